package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"crypto/rand"
	"fmt"
)

// BenchmarkSendDecode is the CPU a messages/send spends on its body before any upstream call: reading it,
// decoding the request, validating the per-recipient copies. The body is the realistic one of bench/compare:
// one ML-KEM-shaped copy per member of a 201-member room (~490 KB).
//
//	go test ./api -run '^$' -bench SendDecode -benchmem
func BenchmarkSendDecode(b *testing.B) {
	uuid := func() string {
		var u [16]byte
		_, _ = rand.Read(u[:])
		u[6], u[8] = u[6]&0x0f|0x40, u[8]&0x3f|0x80
		return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	}
	contents := map[string]string{}
	for range 201 {
		contents[uuid()] = browserCopy(b, 40)
	}
	body, _ := json.Marshal(map[string]any{"conversationId": uuid(), "encryptedContents": contents,
		"messageType": "text", "metadata": map[string]any{"t": 1}})
	limits := MessageLimits{}.withDefaults()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/api/messages/send", bytes.NewReader(body))
		w := httptest.NewRecorder()
		var req sendRequest
		if !readJSON(w, r, &req) {
			b.Fatal(w.Body.String())
		}
		got, problem := limits.recipientContents(req.EncryptedContents)
		if problem != contentsOK || len(got) != 201 {
			b.Fatal(problem)
		}
	}
}
