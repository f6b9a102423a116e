package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// fileSetup is a group of owner and member with one message of owner's to attach files to.
type fileSetup struct {
	owner, member testenv.User
	conv, msg     string
}

func newFileSetup(t *testing.T, h *harness) fileSetup {
	t.Helper()
	f := fileSetup{owner: testenv.NewUser(t), member: testenv.NewUser(t)}
	f.conv = newConv(t, h, "group", f.owner, f.member)
	f.msg = sendText(t, h, f.owner, f.conv, "[File attachment]", f.member)["id"].(string)
	return f
}

// upload runs upload-url, stores the object as the browser's PUT would, and returns the path and file id.
func (f fileSetup) upload(t *testing.T, h *harness) (path, fileID string) {
	t.Helper()
	r := h.do("POST", "/api/files/upload-url", f.owner.Token(t, time.Hour), map[string]any{"conversationId": f.conv,
		"messageId": f.msg, "encryptedMetadata": map[string]string{f.owner.ID: "m-o", f.member.ID: "m-m"}})
	mustStatus(t, r, 200)
	path, fileID = r.JSON(t)["storagePath"].(string), r.JSON(t)["fileId"].(string)
	h.storage.put("encrypted-files/"+path, []byte(`{"`+f.member.ID+`":"blob"}`))
	return path, fileID
}

func (f fileSetup) complete(path, fileID string) map[string]any {
	return map[string]any{"storagePath": path, "fileId": fileID, "metadata": map[string]any{"messageId": f.msg,
		"conversationId": f.conv, "encryptedMetadata": map[string]string{f.member.ID: "m-m"}}}
}

// TestFileRoutes covers /api/files/* (routes.md §8): the {"error","message"} bodies, intended statuses, the Storage
// requests (checked by the fake) and the NEW_MESSAGE of upload-complete.
func TestFileRoutes(t *testing.T) {
	h := newHarness(t)

	t.Run("upload-url", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		f := newFileSetup(t, h)
		tok := f.owner.Token(t, time.Hour)
		post := func(tok string, body any) resp { return h.do("POST", "/api/files/upload-url", tok, body) }
		meta := map[string]string{f.owner.ID: "m"}
		wantFileErr(t, post("", map[string]any{"conversationId": f.conv, "messageId": f.msg, "encryptedMetadata": meta}), 401, "Unauthorized")
		for _, body := range []map[string]any{{}, {"conversationId": f.conv, "messageId": f.msg},
			{"conversationId": f.conv, "encryptedMetadata": meta}, {"messageId": f.msg, "encryptedMetadata": meta}} {
			wantFileErr(t, post(tok, body), 400, "Missing required fields")
		}
		for _, m := range []any{map[string]any{}, "text", []string{"a"}, 5} {
			wantFileErr(t, post(tok, map[string]any{"conversationId": f.conv, "messageId": f.msg, "encryptedMetadata": m}), 400,
				"Invalid encrypted metadata")
		}
		body := map[string]any{"conversationId": f.conv, "messageId": f.msg, "encryptedMetadata": meta}
		wantFileErr(t, post(testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), body), 404, "User profile not found")
		wantFileErr(t, post(testenv.NewUser(t).Token(t, time.Hour), body), 403, "Not authorized to upload files to this conversation")
		// Someone else's message, or a message of another conversation, is not the caller's to attach to.
		wantFileErr(t, post(f.member.Token(t, time.Hour), body), 404, "Message not found or unauthorized")
		other := newConv(t, h, "direct", f.owner, f.member)
		wantFileErr(t, post(tok, map[string]any{"conversationId": other, "messageId": f.msg, "encryptedMetadata": meta}), 404,
			"Message not found or unauthorized")

		r := post(tok, body)
		mustStatus(t, r, 200)
		out := r.JSON(t)
		if keysOf(out) != "fileId,metadata,storagePath,success,token,uploadUrl" || out["success"] != true {
			t.Fatalf("upload-url: %s", r.Body)
		}
		fileID := out["fileId"].(string)
		if !regexp.MustCompile(`^file_\d{13}_[0-9a-f]{13}$`).MatchString(fileID) {
			t.Fatalf("fileId %q", fileID)
		}
		path := f.owner.AuthID + "/" + f.conv + "/" + fileID
		if out["storagePath"] != path {
			t.Fatalf("storagePath %v, want %s", out["storagePath"], path)
		}
		wantURL := "https://public.example.test/storage/v1/object/upload/sign/encrypted-files/" + path + "?token="
		if u := out["uploadUrl"].(string); !strings.HasPrefix(u, wantURL) || out["token"] == "" || !strings.HasSuffix(u, out["token"].(string)) {
			t.Fatalf("uploadUrl %q token %v", u, out["token"])
		}
		if md := out["metadata"].(map[string]any); md["messageId"] != f.msg || md["conversationId"] != f.conv || len(md) != 2 {
			t.Fatalf("metadata %v", md)
		}
		// Storage signed it under the caller's own token: its upload token names the caller as the owner.
		if owner := uploadTokenOwner(t, out["token"].(string)); owner != f.owner.AuthID {
			t.Fatalf("upload token owner %q, want the caller %s", owner, f.owner.AuthID)
		}
		// The browser's next step: a PUT of the ciphertext to that URL (no other credentials) stores the object.
		u := strings.Replace(out["uploadUrl"].(string), "https://public.example.test", testenv.SupabaseURL(t), 1)
		req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(`{"x":"ciphertext"}`))
		req.Header.Set("Content-Type", "application/octet-stream")
		res, err := isolatedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("PUT to the signed upload URL: %d", res.StatusCode)
		}
		if data, ok := h.storage.get("encrypted-files/" + path); !ok || string(data) != `{"x":"ciphertext"}` {
			t.Fatalf("uploaded object: %q (found %v)", data, ok)
		}
	})

	t.Run("upload-complete", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		f := newFileSetup(t, h)
		tok := f.owner.Token(t, time.Hour)
		post := func(tok string, body any) resp { return h.do("POST", "/api/files/upload-complete", tok, body) }
		path, fileID := f.upload(t, h)
		good := f.complete(path, fileID)
		wantFileErr(t, post("", good), 401, "Unauthorized")
		for _, body := range []map[string]any{{}, {"storagePath": path, "fileId": fileID}, {"fileId": fileID, "metadata": good["metadata"]},
			{"storagePath": path, "metadata": good["metadata"]}} {
			wantFileErr(t, post(tok, body), 400, "Missing required fields")
		}
		for _, md := range []map[string]any{{}, {"messageId": f.msg, "conversationId": f.conv},
			{"messageId": f.msg, "encryptedMetadata": map[string]string{"a": "b"}},
			{"conversationId": f.conv, "encryptedMetadata": map[string]string{"a": "b"}},
			{"messageId": f.msg, "conversationId": f.conv, "encryptedMetadata": map[string]string{}}} {
			wantFileErr(t, post(tok, map[string]any{"storagePath": path, "fileId": fileID, "metadata": md}), 400, "Missing metadata fields")
		}
		wantFileErr(t, post(testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), good), 404, "User profile not found")
		wantFileErr(t, post(testenv.NewUser(t).Token(t, time.Hour), good), 403, "Not authorized to complete upload for this conversation")
		// The path must be the caller's own folder of that conversation, ending in the file id.
		for _, p := range []string{f.member.AuthID + "/" + f.conv + "/" + fileID, f.owner.AuthID + "/" + f.conv + "/../x/" + fileID,
			f.owner.AuthID + "/" + f.conv + "/other", path + "/x"} {
			body := f.complete(p, fileID)
			wantFileErr(t, post(tok, body), 403, "Invalid storage path")
		}
		wantFileErr(t, post(f.member.Token(t, time.Hour), f.complete(f.member.AuthID+"/"+f.conv+"/"+fileID, fileID)), 404,
			"Message not found or unauthorized")
		missingID := "file_1_0000000000000"
		wantFileErr(t, post(tok, f.complete(f.owner.AuthID+"/"+f.conv+"/"+missingID, missingID)), 404,
			"File not found in storage - upload may have failed")
		if n := dbScalar[int64](t, `select count(*) from encrypted_files where message_id = $1`, f.msg); n != 0 {
			t.Fatalf("refused completions stored %d rows", n)
		}

		os, ms := h.openStream(tok), h.openStream(f.member.Token(t, time.Hour))
		r := post(tok, good)
		mustStatus(t, r, 200)
		file := r.JSON(t)["file"].(map[string]any)
		if r.JSON(t)["success"] != true || keysOf(file) != "createdAt,id,messageId" || file["messageId"] != f.msg {
			t.Fatalf("upload-complete: %s", r.Body)
		}
		for _, st := range []*stream{os, ms} {
			ev := st.expect("NEW_MESSAGE")
			m := ev.Data["message"].(map[string]any)
			if keysOf(m) != "conversation_id,has_attachments,id" || m["id"] != f.msg || m["conversation_id"] != f.conv ||
				m["has_attachments"] != true || ev.Data["shouldReloadMessages"] != true {
				t.Fatalf("NEW_MESSAGE: %s", ev.Raw)
			}
		}
		row := dbScalar[string](t, `select created_by::text || ' ' || storage_path from encrypted_files where id = $1`, file["id"])
		if row != f.owner.AuthID+" "+path {
			t.Fatalf("encrypted_files row: %s", row)
		}
		if !dbScalar[bool](t, `select has_attachments from messages where id = $1`, f.msg) {
			t.Fatal("has_attachments not set")
		}
	})

	t.Run("files of a message, encrypted file, details", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		f := newFileSetup(t, h)
		path, fileID := f.upload(t, h)
		r := h.do("POST", "/api/files/upload-complete", f.owner.Token(t, time.Hour), f.complete(path, fileID))
		mustStatus(t, r, 200)
		id := r.JSON(t)["file"].(map[string]any)["id"].(string)
		outsider := testenv.NewUser(t).Token(t, time.Hour)

		// files/message/{id}
		wantFileErr(t, h.do("GET", "/api/files/message/"+f.msg, "", nil), 401, "Unauthorized")
		wantFileErr(t, h.do("GET", "/api/files/message/"+f.msg, testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), nil), 404, "User profile not found")
		wantBody(t, h.do("GET", "/api/files/message/"+f.msg, outsider, nil), 200, `{"files":[]}`)
		wantBody(t, h.do("GET", "/api/files/message/00000000-0000-4000-8000-000000000000", f.owner.Token(t, time.Hour), nil), 200, `{"files":[]}`)
		for who, owner := range map[string]bool{f.owner.Token(t, time.Hour): true, f.member.Token(t, time.Hour): false} {
			r := h.do("GET", "/api/files/message/"+f.msg, who, nil)
			mustStatus(t, r, 200)
			files := r.JSON(t)["files"].([]any)
			if len(files) != 1 {
				t.Fatalf("files: %s", r.Body)
			}
			fm := files[0].(map[string]any)
			if keysOf(fm) != "createdAt,createdBy,encryptedMetadata,id,isOwner,messageId" || fm["id"] != id || fm["isOwner"] != owner ||
				fm["createdBy"] != f.owner.AuthID || fm["encryptedMetadata"].(map[string]any)[f.member.ID] != "m-m" {
				t.Fatalf("file item: %v", fm)
			}
		}

		// files/{id}/encrypted
		enc := "/api/files/" + id + "/encrypted"
		wantFileErr(t, h.do("GET", enc, "", nil), 401, "Unauthorized")
		wantFileErr(t, h.do("GET", enc, outsider, nil), 404, "File not found or unauthorized")
		wantFileErr(t, h.do("GET", "/api/files/00000000-0000-4000-8000-000000000000/encrypted", outsider, nil), 404, "File not found or unauthorized")
		r = h.do("GET", enc, f.member.Token(t, time.Hour), nil)
		mustStatus(t, r, 200)
		ef := r.JSON(t)["file"].(map[string]any)
		if r.JSON(t)["success"] != true || keysOf(ef) != "encryptedContents,encryptedMetadata,id,messageId" || ef["id"] != id ||
			ef["messageId"] != f.msg || ef["encryptedContents"] != `{"`+f.member.ID+`":"blob"}` {
			t.Fatalf("encrypted: %s", r.Body)
		}
		var parsed map[string]string
		if json.Unmarshal([]byte(ef["encryptedContents"].(string)), &parsed) != nil || parsed[f.member.ID] != "blob" {
			t.Fatalf("encryptedContents is not the stored JSON string: %v", ef["encryptedContents"])
		}

		// files/{id}: GET 501, HEAD headers, POST details.
		one := "/api/files/" + id
		wantFileErr(t, h.do("GET", one, f.owner.Token(t, time.Hour), nil), 501, "Server-side decryption is not supported")
		wantFileErr(t, h.do("GET", one, "", nil), 401, "Unauthorized")
		r = h.do("HEAD", one, f.member.Token(t, time.Hour), nil)
		mustStatus(t, r, 200)
		if r.Header.Get("Content-Type") != "application/octet-stream" || r.Header.Get("Content-Disposition") != `attachment; filename="encrypted-file"` {
			t.Fatalf("HEAD headers: %v", r.Header)
		}
		if _, err := http.ParseTime(r.Header.Get("Last-Modified")); err != nil {
			t.Fatalf("Last-Modified %q", r.Header.Get("Last-Modified"))
		}
		mustStatus(t, h.do("HEAD", one, outsider, nil), 404)
		mustStatus(t, h.do("HEAD", one, "", nil), 401)
		r = h.do("POST", one, f.member.Token(t, time.Hour), nil)
		mustStatus(t, r, 200)
		d := r.JSON(t)
		if keysOf(d) != "conversationId,createdAt,createdBy,encryptedMetadata,id,isOwner,messageId" || d["id"] != id ||
			d["conversationId"] != f.conv || d["isOwner"] != false || d["createdBy"] != f.owner.AuthID {
			t.Fatalf("details: %s", r.Body)
		}
		if h.do("POST", one, f.owner.Token(t, time.Hour), nil).JSON(t)["isOwner"] != true {
			t.Fatal("isOwner false for the uploader")
		}
		wantFileErr(t, h.do("POST", one, outsider, nil), 404, "File not found or unauthorized")

		// The object vanished from storage: the download fails with the route's text.
		h.storage.remove("encrypted-files/" + path)
		wantFileErr(t, h.do("GET", enc, f.owner.Token(t, time.Hour), nil), 500, "Failed to download file from storage")
	})

	t.Run("deprecated upload", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		wantFileErr(t, h.rawReq("POST", "/api/files/upload", "", "multipart/form-data; boundary=x", []byte("--x--")), 401, "Unauthorized")
		wantFileErr(t, h.rawReq("POST", "/api/files/upload", testenv.NewUser(t).Token(t, time.Hour), "multipart/form-data; boundary=x",
			[]byte("--x--")), 501, "This upload method is deprecated. Use /api/files/upload-url for E2E encrypted uploads.")
	})
}

// uploadTokenOwner returns the owner claim of a Storage signed-upload token (Storage copies the signing caller's
// JWT subject into it).
func uploadTokenOwner(t testing.TB, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("upload token %q is not a JWT", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Owner string `json:"owner"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Owner
}
