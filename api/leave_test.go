package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestLastOneOutRemovesGroup: leaving a group keeps it for the others; when the last participant leaves, the
// conversation goes too, with its files and their Storage objects.
func TestLastOneOutRemovesGroup(t *testing.T) {
	h := newHarness(t)
	a, b := testenv.NewUser(t), testenv.NewUser(t)
	at, bt := a.Token(t, time.Hour), b.Token(t, time.Hour)
	r := h.do("POST", "/api/chat/conversations", at, map[string]any{"type": "group", "name": "g", "participant_ids": []string{b.ID}})
	mustStatus(t, r, 200)
	conv := r.JSON(t)["conversation_id"].(string)
	// b sends a message with a file and stays; a leaves first.
	r = h.do("POST", "/api/messages/send", bt, map[string]any{"conversationId": conv, "messageType": "file",
		"encryptedContents": map[string]string{a.ID: "x", b.ID: "y"}})
	mustStatus(t, r, 200)
	msg := r.JSON(t)["message"].(map[string]any)["id"].(string)
	r = h.do("POST", "/api/files/upload-url", bt, map[string]any{"conversationId": conv, "messageId": msg,
		"encryptedMetadata": map[string]string{b.ID: "m"}})
	mustStatus(t, r, 200)
	path, fileID := r.JSON(t)["storagePath"].(string), r.JSON(t)["fileId"].(string)
	h.storage.put("encrypted-files/"+path, []byte(`{}`))
	mustStatus(t, h.do("POST", "/api/files/upload-complete", bt, map[string]any{"storagePath": path, "fileId": fileID,
		"metadata": map[string]any{"messageId": msg, "conversationId": conv, "encryptedMetadata": map[string]string{b.ID: "m"}}}), 200)

	mustStatus(t, h.do("POST", "/api/conversations/delete", at, map[string]any{"conversationId": conv}), 200)
	db := testenv.DB(t)
	count := func() int {
		var n int
		if err := db.QueryRow(context.Background(), `select count(*) from conversations where id = $1`, conv).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count() != 1 || !h.storage.has("encrypted-files/"+path) {
		t.Fatal("the group or b's file went when a left")
	}
	// b is the last one out: the conversation and b's file object go.
	mustStatus(t, h.do("POST", "/api/conversations/delete", bt, map[string]any{"conversationId": conv}), 200)
	if count() != 0 {
		t.Fatal("an empty group stayed behind")
	}
	if h.storage.has("encrypted-files/" + path) {
		t.Fatal("the file object of the removed group stayed in storage")
	}
}
