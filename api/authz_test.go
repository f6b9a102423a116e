package api_test

import (
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// fixture is a group conversation of owner (creator) and member, with one message of owner's carrying a file.
type fixture struct {
	owner, member, outsider testenv.User
	conv, msg, file, path   string
}

func newFixture(t *testing.T, h *harness) fixture {
	t.Helper()
	f := fixture{owner: testenv.NewUser(t), member: testenv.NewUser(t), outsider: testenv.NewUser(t)}
	ot := f.owner.Token(t, time.Hour)
	r := h.do("POST", "/api/chat/conversations", ot, map[string]any{"type": "group", "name": "g", "participant_ids": []string{f.member.ID}})
	mustStatus(t, r, 200)
	f.conv = r.JSON(t)["conversation_id"].(string)
	r = h.do("POST", "/api/messages/send", ot, map[string]any{"conversationId": f.conv, "messageType": "file",
		"encryptedContents": map[string]string{f.owner.ID: "x", f.member.ID: "y"}})
	mustStatus(t, r, 200)
	f.msg = r.JSON(t)["message"].(map[string]any)["id"].(string)
	r = h.do("POST", "/api/files/upload-url", ot, map[string]any{"conversationId": f.conv, "messageId": f.msg,
		"encryptedMetadata": map[string]string{f.owner.ID: "m"}})
	mustStatus(t, r, 200)
	f.path = r.JSON(t)["storagePath"].(string)
	fileID := r.JSON(t)["fileId"].(string)
	h.storage.put("encrypted-files/"+f.path, []byte(`{"k":"v"}`))
	r = h.do("POST", "/api/files/upload-complete", ot, map[string]any{"storagePath": f.path, "fileId": fileID,
		"metadata": map[string]any{"messageId": f.msg, "conversationId": f.conv, "encryptedMetadata": map[string]string{f.owner.ID: "m"}}})
	mustStatus(t, r, 200)
	f.file = r.JSON(t)["file"].(map[string]any)["id"].(string)
	return f
}

// TestAuthorizationMatrix runs every route that names a conversation, message, file or user as the conversation's
// owner, another participant, a signed-in non-participant, an anonymous caller and an expired token. One row per
// route; the columns are the statuses each role must get. Non-participants must learn nothing: where they get
// 200 the body must be empty of data, and nothing may change.
func TestAuthorizationMatrix(t *testing.T) {
	h := newHarness(t)
	type call func(f fixture) (method, path string, body any)
	conv := func(method, path string) call {
		return func(f fixture) (string, string, any) { return method, path, map[string]any{"conversationId": f.conv} }
	}
	rows := []struct {
		name string
		call call
		want [5]int // owner, member, outsider, anon, expired
		// empty, when set, checks that an outsider's 200 answer carries no data.
		empty func(t *testing.T, r resp)
	}{
		{"messages/send", func(f fixture) (string, string, any) {
			return "POST", "/api/messages/send", map[string]any{"conversationId": f.conv,
				"encryptedContents": map[string]string{f.owner.ID: "a", f.member.ID: "b", f.outsider.ID: "c"}}
		}, [5]int{200, 200, 403, 401, 401}, nil},
		{"messages/load", conv("POST", "/api/messages/load"), [5]int{200, 200, 403, 401, 401}, nil},
		{"conversations/join", conv("POST", "/api/conversations/join"), [5]int{200, 200, 403, 401, 401}, nil},
		{"typing/start", conv("POST", "/api/typing/start"), [5]int{200, 200, 403, 401, 401}, nil},
		{"typing/stop", conv("POST", "/api/typing/stop"), [5]int{200, 200, 403, 401, 401}, nil},
		{"conversations/archive", conv("POST", "/api/conversations/archive"), [5]int{200, 200, 404, 401, 401}, nil},
		{"conversations/unarchive", conv("POST", "/api/conversations/unarchive"), [5]int{404, 404, 404, 401, 401}, nil},
		{"mark-read", func(f fixture) (string, string, any) {
			return "POST", "/api/chat/conversations/" + f.conv + "/mark-read", nil
		}, [5]int{200, 200, 403, 401, 401}, nil},
		{"participants GET", func(f fixture) (string, string, any) {
			return "GET", "/api/chat/conversations/" + f.conv + "/participants", nil
		}, [5]int{200, 200, 403, 401, 401}, nil},
		{"participants POST", func(f fixture) (string, string, any) {
			return "POST", "/api/chat/conversations/" + f.conv + "/participants", map[string]any{"user_ids": []string{f.outsider.ID}}
		}, [5]int{200, 200, 403, 401, 401}, nil},
		{"chat/conversations PATCH", func(f fixture) (string, string, any) {
			return "PATCH", "/api/chat/conversations", map[string]any{"conversation_id": f.conv, "action": "archive"}
		}, [5]int{200, 200, 404, 401, 401}, nil},
		{"files/upload-url", func(f fixture) (string, string, any) {
			return "POST", "/api/files/upload-url", map[string]any{"conversationId": f.conv, "messageId": f.msg,
				"encryptedMetadata": map[string]string{f.owner.ID: "m"}}
		}, [5]int{200, 404, 403, 401, 401}, nil},
		{"files/message", func(f fixture) (string, string, any) { return "GET", "/api/files/message/" + f.msg, nil },
			[5]int{200, 200, 200, 401, 401}, func(t *testing.T, r resp) {
				if files, _ := r.JSON(t)["files"].([]any); len(files) != 0 {
					t.Fatalf("outsider sees files: %s", r.Body)
				}
			}},
		{"files/encrypted", func(f fixture) (string, string, any) { return "GET", "/api/files/" + f.file + "/encrypted", nil },
			[5]int{200, 200, 404, 401, 401}, nil},
		{"files/{id} POST", func(f fixture) (string, string, any) { return "POST", "/api/files/" + f.file, nil },
			[5]int{200, 200, 404, 401, 401}, nil},
		{"disappearing GET", func(f fixture) (string, string, any) {
			return "GET", "/api/conversations/" + f.conv + "/disappearing-messages", nil
		}, [5]int{200, 200, 403, 401, 401}, nil},
		{"disappearing PUT", func(f fixture) (string, string, any) {
			return "PUT", "/api/conversations/" + f.conv + "/disappearing-messages", map[string]any{"disappear_seconds": 60}
		}, [5]int{200, 200, 403, 401, 401}, nil},
		{"chat/messages GET", func(f fixture) (string, string, any) {
			return "GET", "/api/chat/messages?conversation_id=" + f.conv, nil
		}, [5]int{200, 200, 403, 401, 401}, nil},
		{"chat/messages/{id}", func(f fixture) (string, string, any) { return "GET", "/api/chat/messages/" + f.msg, nil },
			[5]int{200, 200, 404, 401, 401}, nil},
		{"chat/messages PATCH", func(f fixture) (string, string, any) {
			return "PATCH", "/api/chat/messages", map[string]any{"message_id": f.msg}
		}, [5]int{200, 200, 200, 401, 401}, nil},
		{"conversations/delete", conv("POST", "/api/conversations/delete"), [5]int{200, 200, 404, 401, 401}, nil},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			for i, role := range []string{"owner", "member", "outsider", "anon", "expired"} {
				f := newFixture(t, h)
				tok := map[string]string{
					"owner": f.owner.Token(t, time.Hour), "member": f.member.Token(t, time.Hour),
					"outsider": f.outsider.Token(t, time.Hour), "anon": "", "expired": f.owner.Token(t, -time.Hour),
				}[role]
				method, path, body := row.call(f)
				r := h.do(method, path, tok, body)
				if r.Status != row.want[i] {
					t.Errorf("%s: status %d, want %d; body %s", role, r.Status, row.want[i], r.Body)
					continue
				}
				if role == "outsider" && r.Status == 200 && row.empty != nil {
					row.empty(t, r)
				}
				if role == "outsider" || role == "anon" || role == "expired" {
					assertUntouched(t, h, f)
				}
			}
		})
	}
}

// assertUntouched checks that the fixture's conversation still has its two members, its message and its file.
func assertUntouched(t *testing.T, h *harness, f fixture) {
	t.Helper()
	ot := f.owner.Token(t, time.Hour)
	r := h.do("GET", "/api/chat/conversations/"+f.conv+"/participants", ot, nil)
	mustStatus(t, r, 200)
	if parts, _ := r.JSON(t)["participants"].([]any); len(parts) != 2 {
		t.Fatalf("participants changed: %s", r.Body)
	}
	r = h.do("GET", "/api/files/message/"+f.msg, ot, nil)
	if files, _ := r.JSON(t)["files"].([]any); len(files) != 1 {
		t.Fatalf("file changed: %s", r.Body)
	}
	if !h.storage.has("encrypted-files/" + f.path) {
		t.Fatalf("object %s removed", f.path)
	}
}
