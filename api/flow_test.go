package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestScriptedConversation drives two users through the routes only, as the browser does, and checks each user's
// real event stream: create a direct conversation, exchange messages, typing, mark read (unread counts move),
// attach a file, archive, delete.
func TestScriptedConversation(t *testing.T) {
	h := newHarness(t)
	alice, bob := testenv.NewUser(t), testenv.NewUser(t)
	at, bt := alice.Token(t, time.Hour), bob.Token(t, time.Hour)
	as, bs := h.openStream(at), h.openStream(bt)

	// Create: bob's stream learns of it; alice (the creator) gets no event.
	r := h.do("POST", "/api/chat/conversations", at, map[string]any{"type": "direct", "participant_ids": []string{bob.ID}})
	mustStatus(t, r, 200)
	conv, _ := r.JSON(t)["conversation_id"].(string)
	if conv == "" || r.JSON(t)["message"] != "Conversation created successfully" {
		t.Fatalf("create: %s", r.Body)
	}
	ev := bs.expect("CONVERSATION_CREATED")
	if c, _ := ev.Data["conversation"].(map[string]any); c["id"] != conv {
		t.Fatalf("CONVERSATION_CREATED carries %v", ev.Data)
	}
	// Creating it again finds the existing one.
	r = h.do("POST", "/api/chat/conversations", at, map[string]any{"type": "direct", "participant_ids": []string{bob.ID}})
	mustStatus(t, r, 200)
	if r.JSON(t)["conversation_id"] != conv || r.JSON(t)["message"] != "Direct message conversation already exists" {
		t.Fatalf("second create: %s", r.Body)
	}

	// Both open the conversation (joins the room).
	for _, tok := range []string{at, bt} {
		r = h.do("POST", "/api/messages/load", tok, map[string]any{"conversationId": conv})
		mustStatus(t, r, 200)
		if msgs, _ := r.JSON(t)["messages"].([]any); len(msgs) != 0 {
			t.Fatalf("new conversation has messages: %s", r.Body)
		}
	}
	// The participant list gives the encryption keys' owners.
	r = h.do("GET", "/api/chat/conversations/"+conv+"/participants", at, nil)
	mustStatus(t, r, 200)
	if parts, _ := r.JSON(t)["participants"].([]any); len(parts) != 2 {
		t.Fatalf("participants: %s", r.Body)
	}

	// Alice sends: both streams (the sender's echo included) get NEW_MESSAGE with the full row.
	send := func(tok, text string) string {
		t.Helper()
		r := h.do("POST", "/api/messages/send", tok, map[string]any{"conversationId": conv, "messageType": "text",
			"encryptedContents": map[string]string{alice.ID: `{"to":"alice","t":"` + text + `"}`, bob.ID: `{"to":"bob","t":"` + text + `"}`}})
		mustStatus(t, r, 200)
		m, _ := r.JSON(t)["message"].(map[string]any)
		if r.JSON(t)["success"] != true || m["id"] == nil || m["encrypted_content"] != `\x` {
			t.Fatalf("send: %s", r.Body)
		}
		return m["id"].(string)
	}
	m1 := send(at, "hello")
	for _, st := range []*stream{as, bs} {
		ev := st.expect("NEW_MESSAGE")
		msg, _ := ev.Data["message"].(map[string]any)
		if msg["id"] != m1 || msg["conversation_id"] != conv || ev.Data["shouldReloadMessages"] != true {
			t.Fatalf("NEW_MESSAGE: %s", ev.Raw)
		}
		if sender, _ := msg["sender"].(map[string]any); sender["username"] != alice.Username {
			t.Fatalf("NEW_MESSAGE sender: %s", ev.Raw)
		}
	}
	// Bob loads and sees his own copy, decoded.
	r = h.do("POST", "/api/messages/load", bt, map[string]any{"conversationId": conv})
	mustStatus(t, r, 200)
	msgs, _ := r.JSON(t)["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["encrypted_content"] != `{"to":"bob","t":"hello"}` {
		t.Fatalf("bob's load: %s", r.Body)
	}

	// Typing: bob sees it, alice (the typer) does not.
	mustStatus(t, h.do("POST", "/api/typing/start", at, map[string]any{"conversationId": conv}), 200)
	ev = bs.expect("USER_TYPING")
	if ev.Data["userId"] != alice.ID || ev.Data["isTyping"] != true || ev.Data["username"] != alice.Username {
		t.Fatalf("typing start: %s", ev.Raw)
	}
	mustStatus(t, h.do("POST", "/api/typing/stop", at, map[string]any{"conversationId": conv}), 200)
	if ev = bs.expect("USER_TYPING"); ev.Data["isTyping"] != false {
		t.Fatalf("typing stop: %s", ev.Raw)
	}
	as.quiet(200 * time.Millisecond)

	// Unread counts move: bob has 1, mark-read makes it 0; alice gets the read receipt.
	unread := func(tok string) float64 {
		t.Helper()
		r := h.do("GET", "/api/chat/conversations", tok, nil)
		mustStatus(t, r, 200)
		for _, c := range r.JSON(t)["conversations"].([]any) {
			if c.(map[string]any)["id"] == conv {
				return c.(map[string]any)["unread_count"].(float64)
			}
		}
		t.Fatalf("conversation %s not listed: %s", conv, r.Body)
		return -1
	}
	if n := unread(bt); n != 1 {
		t.Fatalf("bob unread = %v, want 1", n)
	}
	mustStatus(t, h.do("POST", "/api/chat/conversations/"+conv+"/mark-read", bt, nil), 200)
	if n := unread(bt); n != 0 {
		t.Fatalf("bob unread after mark-read = %v, want 0", n)
	}
	if ev = as.expect("MESSAGE_READ"); ev.Data["userId"] != bob.ID {
		t.Fatalf("read receipt: %s", ev.Raw)
	}

	// Attachment: a file message, then upload-url, the browser's PUT (simulated in the fake), upload-complete.
	fm := send(bt, "[File attachment]")
	as.expect("NEW_MESSAGE")
	bs.expect("NEW_MESSAGE")
	r = h.do("POST", "/api/files/upload-url", bt, map[string]any{"conversationId": conv, "messageId": fm,
		"encryptedMetadata": map[string]string{alice.ID: "meta-a", bob.ID: "meta-b"}})
	mustStatus(t, r, 200)
	up := r.JSON(t)
	path, _ := up["storagePath"].(string)
	fileID, _ := up["fileId"].(string)
	if want := bob.AuthID + "/" + conv + "/" + fileID; path != want {
		t.Fatalf("storagePath = %q, want %q", path, want)
	}
	if want := "https://public.example.test/storage/v1/object/upload/sign/encrypted-files/" + path + "?token="; len(up["uploadUrl"].(string)) <= len(want) || up["uploadUrl"].(string)[:len(want)] != want {
		t.Fatalf("uploadUrl = %v", up["uploadUrl"])
	}
	contents := fmt.Sprintf(`{%q:"blob-a",%q:"blob-b"}`, alice.ID, bob.ID)
	h.storage.put("encrypted-files/"+path, []byte(contents))
	r = h.do("POST", "/api/files/upload-complete", bt, map[string]any{"storagePath": path, "fileId": fileID,
		"metadata": map[string]any{"messageId": fm, "conversationId": conv, "encryptedMetadata": map[string]string{alice.ID: "meta-a"}}})
	mustStatus(t, r, 200)
	file, _ := r.JSON(t)["file"].(map[string]any)
	for _, st := range []*stream{as, bs} {
		ev := st.expect("NEW_MESSAGE")
		msg, _ := ev.Data["message"].(map[string]any)
		if msg["id"] != fm || msg["has_attachments"] != true || len(msg) != 3 {
			t.Fatalf("upload NEW_MESSAGE: %s", ev.Raw)
		}
	}
	r = h.do("GET", "/api/files/message/"+fm, at, nil)
	mustStatus(t, r, 200)
	files, _ := r.JSON(t)["files"].([]any)
	if len(files) != 1 || files[0].(map[string]any)["id"] != file["id"] || files[0].(map[string]any)["isOwner"] != false {
		t.Fatalf("files of message (alice): %s", r.Body)
	}
	r = h.do("GET", "/api/files/"+file["id"].(string)+"/encrypted", at, nil)
	mustStatus(t, r, 200)
	if f, _ := r.JSON(t)["file"].(map[string]any); f["encryptedContents"] != contents {
		t.Fatalf("encrypted file: %s", r.Body)
	}

	// Archive and unarchive.
	mustStatus(t, h.do("POST", "/api/conversations/archive", at, map[string]any{"conversationId": conv}), 200)
	r = h.do("POST", "/api/conversations/load", at, map[string]any{})
	mustStatus(t, r, 200)
	archived := false
	for _, c := range r.JSON(t)["conversations"].([]any) {
		if c.(map[string]any)["id"] == conv {
			archived = c.(map[string]any)["is_archived"].(bool)
		}
	}
	if !archived {
		t.Fatalf("archived conversation not marked: %s", r.Body)
	}
	mustStatus(t, h.do("POST", "/api/conversations/unarchive", at, map[string]any{"conversationId": conv}), 200)

	// Delete: a direct chat is wiped for both; the attachment's object goes too.
	mustStatus(t, h.do("POST", "/api/conversations/delete", at, map[string]any{"conversationId": conv}), 200)
	for _, tok := range []string{at, bt} {
		r = h.do("POST", "/api/messages/load", tok, map[string]any{"conversationId": conv})
		mustStatus(t, r, http.StatusForbidden)
	}
	if h.storage.has("encrypted-files/" + path) {
		t.Fatal("the deleted conversation's object is still in storage")
	}
	// After the wipe nobody receives the room's events.
	mustStatus(t, h.do("POST", "/api/typing/start", at, map[string]any{"conversationId": conv}), http.StatusForbidden)
	bs.quiet(200 * time.Millisecond)
}
