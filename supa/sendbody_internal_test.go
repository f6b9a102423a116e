package supa

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

// The browser's copy of a message for one member: ML-KEM-1024 JSON, ~2.4 KB, with escaped quotes once in JSON.
func testCopy() string {
	b := make([]byte, 1700)
	_, _ = rand.Read(b)
	return `{"v":3,"alg":"ML-KEM-1024","kem":"` + base64.StdEncoding.EncodeToString(b) + `","n":"abc<&>\u2028"}`
}

func testMessage(members int) NewMessage {
	m := NewMessage{ID: "0b6c3e1e-7a3f-4a51-9c1e-2f1f3c3d4e5f", NotAfter: time.Date(2026, 12, 4, 12, 0, 0, 123456789, time.UTC),
		ConversationID: "5a1c3e1e-7a3f-4a51-9c1e-2f1f3c3d4e5f", Contents: map[string]string{},
		Metadata: json.RawMessage(`{"isAsciiArt":true}`)}
	for i := range members {
		m.Contents[fmt.Sprintf("%08d-7a3f-4a51-9c1e-2f1f3c3d4e5f", i)] = testCopy()
	}
	return m
}

// TestSendBody: the hand-built arguments are the JSON the map form gave, value for value.
func TestSendBody(t *testing.T) {
	reply := "7c1c3e1e-7a3f-4a51-9c1e-2f1f3c3d4e5f"
	for _, m := range []NewMessage{testMessage(3), {ConversationID: "c", Contents: map[string]string{"k\"\\<": "é\u0000x"},
		ReplyToID: &reply, MessageType: "image", ContentType: "file", HasAttachments: true}, {ConversationID: "c"}} {
		body, err := sendBody(m)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, body)
		}
		copies := map[string]string{}
		for id, text := range m.Contents {
			copies[id] = base64.StdEncoding.EncodeToString([]byte(text))
		}
		wantArgs := map[string]any{"p_conversation_id": m.ConversationID, "p_encrypted_contents": copies,
			"p_message_type": or(m.MessageType, "text"), "p_metadata": json.RawMessage(or(string(m.Metadata), "{}")),
			"p_reply_to_id": m.ReplyToID, "p_content_type": or(m.ContentType, "text"), "p_has_attachments": m.HasAttachments}
		if m.ID != "" {
			wantArgs["p_message_id"] = m.ID
			wantArgs["p_not_after"] = m.NotAfter.UTC().Format(time.RFC3339Nano)
		}
		wb, _ := json.Marshal(wantArgs)
		var want map[string]any
		_ = json.Unmarshal(wb, &want)
		if fmt.Sprint(got) != fmt.Sprint(want) || !maps.EqualFunc(got, want, func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
			t.Errorf("body differs:\n got %.300s\nwant %.300s", body, wb)
		}
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// FuzzSendBody: whatever the keys and texts, the body is valid JSON whose copies decode back to the texts' base64.
func FuzzSendBody(f *testing.F) {
	f.Add("k", "v", "k2", "")
	f.Add("\x00\"\\", "\xff\xfe", "<>&\u2028", strings.Repeat("é", 50))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		j1, _ := json.Marshal(k1)
		j2, _ := json.Marshal(k2)
		if k1 != k2 && string(j1) == string(j2) {
			return // two invalid UTF-8 keys that both become U+FFFD: one JSON key, whichever comes last wins
		}
		m := NewMessage{ConversationID: "c", Contents: map[string]string{k1: v1, k2: v2}}
		body, err := sendBody(m)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Copies map[string]string `json:"p_encrypted_contents"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("not JSON: %v\n%q", err, body)
		}
		for k, v := range m.Contents {
			// json.Marshal turns invalid UTF-8 in a key into U+FFFD, as it always did for these keys.
			kk, _ := json.Marshal(k)
			var key string
			_ = json.Unmarshal(kk, &key)
			if got.Copies[key] != base64.StdEncoding.EncodeToString([]byte(v)) {
				t.Fatalf("copy of %q: %q", k, got.Copies[key])
			}
		}
	})
}

// BenchmarkSendBody: rendering the arguments of a send into a 201-member room (~0.65 MB), by hand and through
// json.Marshal of the map (as before).
//
//	go test ./supa -run '^$' -bench SendBody -benchmem
func BenchmarkSendBody(b *testing.B) {
	m := testMessage(201)
	b.Run("hand-built", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := sendBody(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal of the map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			copies := make(map[string]string, len(m.Contents))
			for id, text := range m.Contents {
				copies[id] = base64.StdEncoding.EncodeToString([]byte(text))
			}
			if _, err := json.Marshal(map[string]any{"p_conversation_id": m.ConversationID, "p_encrypted_contents": copies,
				"p_message_type": "text", "p_metadata": m.Metadata, "p_reply_to_id": nil, "p_content_type": "text",
				"p_has_attachments": false, "p_message_id": m.ID, "p_not_after": m.NotAfter.Format(time.RFC3339Nano)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
