package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/api"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// randomUUID is a fresh UUID-shaped id that names no user.
func randomUUID() string {
	h := testenv.RandomHex(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// bigMetadata is a metadata object of n bytes.
func bigMetadata(n int) map[string]string {
	return map[string]string{"pad": strings.Repeat("m", n-len(`{"pad":""}`))}
}

// TestMessageSizeLimits: the per-field limits of the send routes (MessageLimits) answer JSON 413 with the route's
// field names, and a refused send stores nothing.
func TestMessageSizeLimits(t *testing.T) {
	h := newHarness(t)

	t.Run("messages/send defaults", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		conv := newConv(t, h, "direct", a, b)
		ok := map[string]string{a.ID: "x", b.ID: "y"}
		send := func(body map[string]any) resp { return h.do("POST", "/api/messages/send", tok, body) }

		wantErr(t, send(map[string]any{"conversationId": conv, "encryptedContents": ok, "metadata": bigMetadata(1_000_000)}),
			413, "metadata must be at most 8192 bytes")
		wantErr(t, send(map[string]any{"conversationId": conv, "encryptedContents": ok,
			"metadata": bigMetadata(api.DefaultMessageMetadataMaxBytes + 1)}), 413, "metadata must be at most 8192 bytes")
		huge := strings.Repeat("c", api.DefaultMessageCiphertextMaxBytes+1)
		wantErr(t, send(map[string]any{"conversationId": conv, "encryptedContents": map[string]string{a.ID: "x", b.ID: huge}}),
			413, "encryptedContents values must be at most 65536 bytes each")
		many := map[string]string{}
		for range api.DefaultMessageMaxRecipients + 1 {
			many[randomUUID()] = "x"
		}
		wantErr(t, send(map[string]any{"conversationId": conv, "encryptedContents": many}), 413,
			"encryptedContents must map at most 1000 recipients")
		// A malformed body is still the route's 400, even with an oversized entry beside it.
		wantErr(t, send(map[string]any{"conversationId": conv, "encryptedContents": map[string]any{a.ID: huge, b.ID: 5}}), 400,
			"encryptedContents must be an object with user_id -> encrypted_content mappings")
		if n := dbScalar[int64](t, `select count(*) from messages where conversation_id = $1`, conv); n != 0 {
			t.Fatalf("%d messages stored by refused sends", n)
		}
		// At the bounds the send goes through.
		r := send(map[string]any{"conversationId": conv, "metadata": bigMetadata(api.DefaultMessageMetadataMaxBytes),
			"encryptedContents": map[string]string{a.ID: "x", b.ID: huge[1:]}})
		mustStatus(t, r, 200)
	})

	t.Run("chat/messages POST", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		huge := strings.Repeat("c", api.DefaultMessageCiphertextMaxBytes+1)
		wantErr(t, h.do("POST", "/api/chat/messages", a.Token(t, time.Hour), map[string]any{"conversation_id": conv,
			"encrypted_contents": map[string]string{a.ID: huge, b.ID: "y"}}), 413,
			"encrypted_contents values must be at most 65536 bytes each")
		if n := dbScalar[int64](t, `select count(*) from messages where conversation_id = $1`, conv); n != 0 {
			t.Fatalf("%d messages stored by a refused send", n)
		}
	})

	t.Run("configured limits", func(t *testing.T) {
		t.Parallel()
		h := newHarnessWith(t, func(c *api.Config) {
			c.MessageLimits = api.MessageLimits{MetadataMaxBytes: 32, MaxRecipients: 2, CiphertextMaxBytes: 8}
		})
		a, b, c := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		conv := newConv(t, h, "group", a, b, c)
		send := func(body map[string]any) resp { return h.do("POST", "/api/messages/send", tok, body) }
		wantErr(t, send(map[string]any{"conversationId": conv, "encryptedContents": map[string]string{a.ID: "x"},
			"metadata": bigMetadata(40)}), 413, "metadata must be at most 32 bytes")
		wantErr(t, send(map[string]any{"conversationId": conv, "encryptedContents": map[string]string{a.ID: "x", b.ID: "y", c.ID: "z"}}),
			413, "encryptedContents must map at most 2 recipients")
		wantErr(t, send(map[string]any{"conversationId": conv, "encryptedContents": map[string]string{a.ID: "123456789"}}),
			413, "encryptedContents values must be at most 8 bytes each")
		mustStatus(t, send(map[string]any{"conversationId": conv, "encryptedContents": map[string]string{a.ID: "12345678", b.ID: "y"},
			"metadata": map[string]bool{"isAsciiArt": true}}), 200)
	})
}

// TestMetadataAbuseRefused is the memory-abuse run of issue 11: 400 sends with ~1 MB of metadata each (40 under
// the race detector, where each takes ~100 ms of decoding). Every one is a JSON 413, none is stored or announced,
// and the live heap does not grow with them.
func TestMetadataAbuseRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of one-megabyte requests")
	}
	sends := 400
	if raceEnabled {
		sends = 40
	}
	h := newHarness(t)
	a, b := testenv.NewUser(t), testenv.NewUser(t)
	tok := a.Token(t, time.Hour)
	conv := newConv(t, h, "direct", a, b)
	st := h.openStream(b.Token(t, time.Hour))
	body, err := json.Marshal(map[string]any{"conversationId": conv,
		"encryptedContents": map[string]string{a.ID: "x", b.ID: "y"}, "metadata": bigMetadata(1_000_000)})
	if err != nil {
		t.Fatal(err)
	}
	// One send, from a worker goroutine (no t.Fatal there): whether it was the 413 of the metadata limit.
	refusedOnce := func() bool {
		req, err := http.NewRequest("POST", h.srv.URL+"/api/messages/send", bytes.NewReader(body))
		if err != nil {
			return false
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := h.client.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		return res.StatusCode == http.StatusRequestEntityTooLarge && res.Header.Get("Content-Type") == "application/json" &&
			json.NewDecoder(io.LimitReader(res.Body, 4096)).Decode(&e) == nil && e.Error == "metadata must be at most 8192 bytes"
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	start := time.Now()
	var refused atomic.Int64
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 4 {
		wg.Go(func() {
			for range jobs {
				if refusedOnce() {
					refused.Add(1)
				}
			}
		})
	}
	for i := range sends {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	after := heap()
	t.Logf("%d sends of ~1 MB metadata in %v: %d refused with 413; heap %d KiB before, %d KiB after", sends,
		time.Since(start).Round(time.Millisecond), refused.Load(), before>>10, after>>10)
	if refused.Load() != int64(sends) {
		t.Fatalf("%d of %d sends refused with the 413", refused.Load(), sends)
	}
	if n := dbScalar[int64](t, `select count(*) from messages where conversation_id = $1`, conv); n != 0 {
		t.Fatalf("%d messages stored", n)
	}
	st.quiet(100 * time.Millisecond)
}
