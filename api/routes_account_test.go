package api_test

import (
	"bytes"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestAccountRoutes covers /api/auth/backup-pin, /api/auth/salt, /api/auth/upload-avatar and
// /api/user/nuclear-delete (routes.md §3.1, §3.5, §3.8, §4.6).
func TestAccountRoutes(t *testing.T) {
	h := newHarness(t)

	t.Run("backup-pin", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me := testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		wantErr(t, h.do("GET", "/api/auth/backup-pin", "", nil), 401, "Unauthorized")
		wantErr(t, h.do("POST", "/api/auth/backup-pin", "", map[string]any{"pin": "123456"}), 401, "Unauthorized")
		noProfile := testenv.NewAuthUserNoProfile(t).Token(t, time.Hour)
		wantErr(t, h.do("GET", "/api/auth/backup-pin", noProfile, nil), 404, "User not found")
		wantErr(t, h.do("POST", "/api/auth/backup-pin", noProfile, map[string]any{"pin": "123456"}), 404, "User not found")
		wantBody(t, h.do("GET", "/api/auth/backup-pin", tok, nil), 200, `{"hasPin":false}`)
		for _, pin := range []any{nil, "", "12345", "1234567890123", 123456, true} {
			wantErr(t, h.do("POST", "/api/auth/backup-pin", tok, map[string]any{"pin": pin}), 400, "PIN must be 6-12 digits")
		}
		for _, pin := range []string{"12345a", "123 456", "12.3456", "١٢٣٤٥٦"} {
			wantErr(t, h.do("POST", "/api/auth/backup-pin", tok, map[string]any{"pin": pin}), 400, "PIN must contain only digits")
		}
		wantBody(t, h.do("GET", "/api/auth/backup-pin", tok, nil), 200, `{"hasPin":false}`)
		wantBody(t, h.do("POST", "/api/auth/backup-pin", tok, map[string]any{"pin": "123456789012"}), 200, `{"success":true}`)
		wantBody(t, h.do("GET", "/api/auth/backup-pin", tok, nil), 200, `{"hasPin":true}`)
		// Stored as a salted slow hash, never the unsalted SHA-256 the original kept.
		hash := dbScalar[string](t, `select backup_pin_hash from users where id = $1`, me.ID)
		if !strings.HasPrefix(hash, "pbkdf2-sha256$") || strings.Contains(hash, "123456789012") {
			t.Fatalf("stored hash %q", hash)
		}
		mustStatus(t, h.do("POST", "/api/auth/backup-pin", tok, map[string]any{"pin": "123456789012"}), 200)
		if again := dbScalar[string](t, `select backup_pin_hash from users where id = $1`, me.ID); again == hash {
			t.Fatal("the same PIN hashed twice gives the same value: no salt")
		}
	})

	t.Run("salt", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me, other := testenv.NewUser(t), testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		q := "/api/auth/salt?phone=" + url.QueryEscape(me.Phone)
		wantErr(t, h.do("GET", q, "", nil), 401, "Unauthorized")
		wantErr(t, h.do("POST", "/api/auth/salt", "", map[string]any{"phone": me.Phone, "salt": "s"}), 401, "Unauthorized")
		wantErr(t, h.do("GET", "/api/auth/salt", tok, nil), 400, "Missing phone parameter")
		wantErr(t, h.do("GET", "/api/auth/salt?phone=", tok, nil), 400, "Missing phone parameter")
		for _, body := range []map[string]any{{}, {"phone": me.Phone}, {"salt": "s"}, {"phone": me.Phone, "salt": ""}, {"phone": 5, "salt": "s"}} {
			wantErr(t, h.do("POST", "/api/auth/salt", tok, body), 400, "Missing phone or salt")
		}
		// Only the caller's own number.
		wantErr(t, h.do("GET", "/api/auth/salt?phone="+url.QueryEscape(other.Phone), tok, nil), 403, "Forbidden")
		wantErr(t, h.do("POST", "/api/auth/salt", tok, map[string]any{"phone": other.Phone, "salt": "evil"}), 403, "Forbidden")
		wantErr(t, h.do("GET", q, testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), nil), 404, "User not found")
		wantBody(t, h.do("GET", q, tok, nil), 200, `{"salt":null}`)
		wantBody(t, h.do("POST", "/api/auth/salt", tok, map[string]any{"phone": me.Phone, "salt": "salt-1"}), 200,
			`{"salt":"salt-1","existing":false}`)
		wantBody(t, h.do("POST", "/api/auth/salt", tok, map[string]any{"phone": me.Phone, "salt": "salt-2"}), 200,
			`{"salt":"salt-1","existing":true}`)
		wantBody(t, h.do("GET", q, tok, nil), 200, `{"salt":"salt-1"}`)
		wantBody(t, h.do("GET", "/api/auth/salt?phone="+url.QueryEscape(other.Phone), other.Token(t, time.Hour), nil), 200, `{"salt":null}`)
	})

	t.Run("upload-avatar", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me := testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 100)...)
		upload := func(tok, field, filename, ctype string, data []byte) resp {
			t.Helper()
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			hdr := textproto.MIMEHeader{}
			hdr.Set("Content-Disposition", `form-data; name="`+field+`"; filename="`+filename+`"`)
			hdr.Set("Content-Type", ctype)
			part, _ := mw.CreatePart(hdr)
			_, _ = part.Write(data)
			_ = mw.Close()
			return h.rawReq("POST", "/api/auth/upload-avatar", tok, mw.FormDataContentType(), buf.Bytes())
		}
		wantErr(t, upload("", "avatar", "a.png", "image/png", png), 401, "Authentication required")
		wantErr(t, upload("forged.token.here", "avatar", "a.png", "image/png", png), 401, "Invalid authentication token")
		wantErr(t, upload(me.Token(t, -time.Minute), "avatar", "a.png", "image/png", png), 401, "Invalid authentication token")
		wantErr(t, h.do("DELETE", "/api/auth/upload-avatar", "", nil), 401, "Authentication required")
		wantErr(t, upload(tok, "file", "a.png", "image/png", png), 400, "No file provided")
		wantErr(t, h.rawReq("POST", "/api/auth/upload-avatar", tok, "application/json", []byte(`{}`)), 400, "No file provided")
		const badType = "Invalid file type. Please upload JPEG, PNG, WebP, or GIF images only."
		wantErr(t, upload(tok, "avatar", "a.svg", "image/svg+xml", []byte("<svg/>")), 400, badType)
		wantErr(t, upload(tok, "avatar", "a.png", "image/png", []byte("<html>not a png</html>")), 400, badType) // magic bytes
		wantErr(t, upload(tok, "avatar", "a.png", "image/jpeg", png), 400, badType)
		big := append(append([]byte{}, png...), make([]byte, 5<<20)...)
		wantErr(t, upload(tok, "avatar", "a.png", "image/png", big), 400, "File size too large. Please upload files smaller than 5MB.")
		wantErr(t, upload(tok, "avatar", "a.png", "image/png", make([]byte, 6<<20+10)), 413, "Request body too large")
		if n := h.storage.count("avatars/" + me.AuthID + "/"); n != 0 {
			t.Fatalf("a refused upload reached storage: %d objects", n)
		}

		r := upload(tok, "avatar", "me.photo.PNG", "image/png", png)
		mustStatus(t, r, 200)
		body := r.JSON(t)
		avatar, _ := body["avatarUrl"].(string)
		re := regexp.MustCompile(`^https://public\.example\.test/storage/v1/object/public/avatars/` + me.AuthID + `/(\d{13})\.png$`)
		if body["success"] != true || body["message"] != "Avatar uploaded successfully" || !re.MatchString(avatar) {
			t.Fatalf("upload: %s", r.Body)
		}
		key := "avatars/" + strings.TrimPrefix(avatar, "https://public.example.test/storage/v1/object/public/avatars/")
		if data, ok := h.storage.get(key); !ok || !bytes.Equal(data, png) {
			t.Fatalf("object not stored as sent (found %v)", ok)
		}
		// Uploaded under the caller's own token (Storage records the JWT's subject), as image/png.
		if owner := h.storage.owner(key); owner != me.AuthID {
			t.Fatalf("avatar object owner %q, want the caller %s", owner, me.AuthID)
		}
		if ct := dbScalar[string](t, `select metadata->>'mimetype' from storage.objects where bucket_id = 'avatars' and name = $1`,
			strings.TrimPrefix(key, "avatars/")); ct != "image/png" {
			t.Fatalf("stored content type %q", ct)
		}
		if got := dbScalar[string](t, `select avatar_url from users where id = $1`, me.ID); got != avatar {
			t.Fatalf("avatar_url = %q", got)
		}
		gif := append([]byte("GIF89a"), make([]byte, 20)...)
		r = upload(tok, "avatar", "noext", "image/gif", gif)
		mustStatus(t, r, 200)
		if !strings.HasSuffix(r.JSON(t)["avatarUrl"].(string), ".gif") {
			t.Fatalf("extension from the type: %s", r.Body)
		}
		wantBody(t, h.do("DELETE", "/api/auth/upload-avatar", tok, nil), 200, `{"success":true,"message":"Avatar removed successfully"}`)
		if n := dbScalar[int64](t, `select count(*) from users where id = $1 and avatar_url is null`, me.ID); n != 1 {
			t.Fatal("avatar_url not cleared")
		}
		if !h.storage.has("avatars/" + strings.TrimPrefix(avatar, "https://public.example.test/storage/v1/object/public/avatars/")) {
			t.Fatal("DELETE removed the object (the original kept it)")
		}
	})

	t.Run("nuclear-delete validation", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me := testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		confirm := map[string]any{"confirmation": "DELETE_ALL_MY_DATA"}
		for _, m := range []string{"GET", "POST", "PUT", "PATCH"} {
			r := h.do(m, "/api/user/nuclear-delete", tok, confirm)
			wantErr(t, r, 405, "Method not allowed")
			if r.Header.Get("Allow") != "DELETE" {
				t.Fatalf("%s: Allow = %q", m, r.Header.Get("Allow"))
			}
		}
		wantErr(t, h.do("DELETE", "/api/user/nuclear-delete", "", confirm), 401, "No authentication found")
		wantErr(t, h.do("DELETE", "/api/user/nuclear-delete", "x.y.z", confirm), 401, "Invalid authentication token")
		wantErr(t, h.do("DELETE", "/api/user/nuclear-delete", testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), confirm), 404, "User not found")
		refused := `{"error":"Nuclear delete requires explicit confirmation","required_confirmation":"DELETE_ALL_MY_DATA"}`
		for _, body := range []any{nil, map[string]any{}, map[string]any{"confirmation": "delete_all_my_data"}, map[string]any{"confirmation": true}} {
			wantBody(t, h.do("DELETE", "/api/user/nuclear-delete", tok, body), 400, refused)
		}
		wantBody(t, h.rawReq("DELETE", "/api/user/nuclear-delete", tok, "application/json", []byte(`{"confirmation":`)), 400, refused)
	})

	t.Run("nuclear-delete", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me, friend := testenv.NewUser(t), testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		group := newConv(t, h, "group", friend, me)
		mine := newConv(t, h, "direct", me, friend)
		msg := sendText(t, h, me, group, "file", friend)
		r := h.do("POST", "/api/files/upload-url", tok, map[string]any{"conversationId": group, "messageId": msg["id"],
			"encryptedMetadata": map[string]string{me.ID: "m"}})
		mustStatus(t, r, 200)
		path, fileID := r.JSON(t)["storagePath"].(string), r.JSON(t)["fileId"].(string)
		h.storage.put("encrypted-files/"+path, []byte(`{}`))
		mustStatus(t, h.do("POST", "/api/files/upload-complete", tok, map[string]any{"storagePath": path, "fileId": fileID,
			"metadata": map[string]any{"messageId": msg["id"], "conversationId": group, "encryptedMetadata": map[string]string{me.ID: "m"}}}), 200)
		friendsFile := "encrypted-files/" + friend.AuthID + "/" + group + "/file_1_abc"
		h.storage.put(friendsFile, []byte(`{}`))
		mustStatus(t, h.do("PUT", "/api/crypto/public-keys", tok, map[string]any{"public_key": "k"}), 200)
		mustStatus(t, h.do("PUT", "/api/auth/key-backup", tok, map[string]any{"encrypted_keys": `{"k":1}`}), 200)
		ms := h.openStream(tok)
		mustStatus(t, h.do("POST", "/api/messages/load", tok, map[string]any{"conversationId": group}), 200)

		r = h.do("DELETE", "/api/user/nuclear-delete", tok, map[string]any{"confirmation": "DELETE_ALL_MY_DATA"})
		mustStatus(t, r, 200)
		body := r.JSON(t)
		if body["success"] != true || body["message"] != "All encrypted data has been permanently deleted. Your account remains active." {
			t.Fatalf("nuclear delete: %s", r.Body)
		}
		if ui := body["user_info"].(map[string]any); keysOf(ui) != "phone_number,username" || ui["username"] != me.Username || ui["phone_number"] != me.Phone {
			t.Fatalf("user_info: %v", ui)
		}
		sum := body["deletion_summary"].(map[string]any)
		if sum["success"] != true || sum["scope"] != "encrypted_data_only" || sum["authenticated_user_id"] != me.ID ||
			sum["target_user_id"] != me.ID || sum["deleted_at"] == nil || sum["preserved"] != "User account and profile remain intact" {
			t.Fatalf("deletion_summary: %v", sum)
		}
		counts := sum["deleted_counts"].(map[string]any)
		if keysOf(counts) != "attachments,conversation_participants,conversations,deliveries,encrypted_files,encrypted_key_backups,"+
			"key_access_log,message_recipients,message_status,messages,user_public_keys,voice_calls" {
			t.Fatalf("deleted_counts keys: %s", keysOf(counts))
		}
		if counts["user_public_keys"] != float64(1) || counts["messages"].(float64) < 1 || counts["encrypted_files"] != float64(1) {
			t.Fatalf("deleted_counts: %v", counts)
		}
		// Keys (by auth uid) and the caller's objects are gone; the account, its key backup and others' data stay.
		if n := dbScalar[int64](t, `select count(*) from user_public_keys where user_id = $1`, me.AuthID); n != 0 {
			t.Fatal("public key survived")
		}
		if n := dbScalar[int64](t, `select count(*) from key_backups where user_id = $1`, me.AuthID); n != 1 {
			t.Fatal("key backup deleted")
		}
		if h.storage.has("encrypted-files/"+path) || !h.storage.has(friendsFile) {
			t.Fatalf("storage after delete: own %v, friend's %v", h.storage.has("encrypted-files/"+path), h.storage.has(friendsFile))
		}
		r = h.do("GET", "/api/user/profile", tok, nil)
		mustStatus(t, r, 200)
		if _, ok := listed(t, h, me)[mine]; ok {
			t.Fatal("conversations survived")
		}
		// Dropped from every room: the friend's messages and typing no longer reach the caller's stream.
		mustStatus(t, h.do("POST", "/api/typing/start", friend.Token(t, time.Hour), map[string]any{"conversationId": group}), 200)
		sendText(t, h, friend, group, "still there?")
		ms.quiet(150 * time.Millisecond)
	})
}
