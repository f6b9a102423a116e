package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// browserCopy builds one recipient copy the way the browser's ML-KEM-1024 encryption shapes it
// (post-quantum-encryption.js encryptForRecipient): KEM ciphertext 1,568 bytes, HKDF salt 32, nonce 12, the
// ChaCha20-Poly1305 ciphertext (message + 16-byte tag), all base64, and a millisecond timestamp.
func browserCopy(t testing.TB, messageBytes int) string {
	t.Helper()
	b64 := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}
	env, err := json.Marshal(map[string]any{"v": 3, "alg": "ML-KEM-1024", "kem": b64(1568), "s": b64(32), "n": b64(12),
		"c": b64(messageBytes + 16), "t": int64(1764817467123)})
	if err != nil {
		t.Fatal(err)
	}
	return string(env)
}

func uuidN(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// TestMessageLimitsLetTheBrowserThrough: with the defaults, what the real frontend sends to a 201-member room
// passes — and the whole body stays under the 1 MiB body limit for short messages.
func TestMessageLimitsLetTheBrowserThrough(t *testing.T) {
	l := MessageLimits{}.withDefaults()
	for _, size := range []int{1, 100, 1000} {
		contents := map[string]string{}
		for i := range 201 {
			contents[uuidN(i)] = browserCopy(t, size)
		}
		body, err := json.Marshal(map[string]any{"conversationId": uuidN(999), "encryptedContents": contents,
			"messageType": "text", "metadata": map[string]bool{"isAsciiArt": true}})
		if err != nil {
			t.Fatal(err)
		}
		var req sendRequest
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatal(err)
		}
		if _, p := l.recipientContents(req.EncryptedContents); p != contentsOK {
			t.Errorf("%d-byte message to 201 members refused: %v", size, p)
		}
		if l.metadataTooLarge(req.Metadata) {
			t.Errorf("the browser's metadata refused: %s", req.Metadata)
		}
		one := len(contents[uuidN(0)])
		t.Logf("%5d-byte message, 201 members: one copy %d bytes, body %d bytes (body limit %d)", size, one, len(body), maxJSONBody)
		if size <= 100 && len(body) > maxJSONBody {
			t.Errorf("a short message to 201 members is over the body limit: %d bytes", len(body))
		}
	}
}

// TestMessageLimits: each limit refuses just past its bound, and a malformed entry wins over an oversized one.
func TestMessageLimits(t *testing.T) {
	l := MessageLimits{MetadataMaxBytes: 20, MaxRecipients: 3, CiphertextMaxBytes: 10}.withDefaults()
	obj := func(kv ...string) json.RawMessage {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		b, _ := json.Marshal(m)
		return b
	}
	ten, eleven := strings.Repeat("x", 10), strings.Repeat("x", 11)
	for _, c := range []struct {
		name string
		raw  json.RawMessage
		want contentsProblem
	}{
		{"at the bounds", obj(uuidN(1), ten, uuidN(2), ten, uuidN(3), ten), contentsOK},
		{"one recipient too many", obj(uuidN(1), "a", uuidN(2), "b", uuidN(3), "c", uuidN(4), "d"), contentsTooMany},
		{"one byte too large", obj(uuidN(1), ten, uuidN(2), eleven), contentsTooLarge},
		{"multi-byte characters count as bytes", obj(uuidN(1), strings.Repeat("é", 6)), contentsTooLarge},
		{"malformed wins over oversized", json.RawMessage(`{"` + uuidN(1) + `":"` + eleven + `","` + uuidN(2) + `":5}`), contentsMalformed},
		{"not a UUID", obj("nope", "a"), contentsMalformed},
		{"empty", json.RawMessage(`{}`), contentsMalformed},
		{"not an object", json.RawMessage(`["a"]`), contentsMalformed},
	} {
		var v any
		if err := json.Unmarshal(c.raw, &v); err != nil {
			t.Fatal(err)
		}
		if _, got := l.recipientContents(v); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if l.metadataTooLarge(json.RawMessage(`{"k":"0123456789ab"}`)) { // 20 bytes
		t.Error("metadata at the bound refused")
	}
	if !l.metadataTooLarge(json.RawMessage(`{"k":"0123456789abc"}`)) {
		t.Error("metadata one byte over passed")
	}
	if l.metadataTooLarge(json.RawMessage("{\n  \"k\" :  \"0123456789ab\"\n}")) {
		t.Error("whitespace counted against the metadata limit")
	}
	if d := (MessageLimits{}).withDefaults(); d.MetadataMaxBytes != DefaultMessageMetadataMaxBytes ||
		d.MaxRecipients != DefaultMessageMaxRecipients || d.CiphertextMaxBytes != DefaultMessageCiphertextMaxBytes {
		t.Errorf("defaults: %+v", d)
	}
}
