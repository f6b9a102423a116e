package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// BenchmarkMessageSend measures POST /api/messages/send — authentication, validation, the atomic insert through
// PostgREST, the NEW_MESSAGE publish and its arrival on the recipient's open SSE stream — next to the same insert
// sent straight to PostgREST (the api_send_message RPC through the same Supabase gateway, as a client of Supabase
// would send it), alternating the two in one run. It reports the median and p99 of both and their ratios
// (route/direct): the target is at most 1.15 for both. Results: BENCHMARKS.md.
//
//	source .stack/<name>/env && go test ./api -run '^$' -bench MessageSend -benchtime 400x
func BenchmarkMessageSend(b *testing.B) {
	h := newHarness(b)
	alice, bob := testenv.NewUser(b), testenv.NewUser(b)
	at, bt := alice.Token(b, time.Hour), bob.Token(b, time.Hour)
	r := h.do("POST", "/api/chat/conversations", at, map[string]any{"type": "direct", "participant_ids": []string{bob.ID}})
	mustStatus(b, r, 200)
	conv := r.JSON(b)["conversation_id"].(string)
	listener := h.openStream(bt)

	contents := map[string]string{alice.ID: `{"v":1,"c":"` + string(bytes.Repeat([]byte("A"), 600)) + `"}`,
		bob.ID: `{"v":1,"c":"` + string(bytes.Repeat([]byte("B"), 600)) + `"}`}
	routeBody, _ := json.Marshal(map[string]any{"conversationId": conv, "encryptedContents": contents, "messageType": "text"})
	copies := map[string]string{}
	for k, v := range contents {
		copies[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	directBody, _ := json.Marshal(map[string]any{"p_conversation_id": conv, "p_encrypted_contents": copies,
		"p_message_type": "text", "p_metadata": map[string]any{}})
	direct := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	gateway := testenv.SupabaseURL(b)

	post := func(c *http.Client, url string, body []byte, hdr map[string]string) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("%s: %d %s", url, res.StatusCode, out)
		}
	}
	route := func() {
		post(h.client, h.srv.URL+"/api/messages/send", routeBody, map[string]string{"Authorization": "Bearer " + at})
		listener.expect("NEW_MESSAGE")
	}
	straight := func() {
		post(direct, gateway+"/rest/v1/rpc/api_send_message", directBody,
			map[string]string{"Authorization": "Bearer " + at, "apikey": devkeys.AnonKey()})
	}
	for range 20 { // warm connections, caches and plans
		route()
		straight()
	}
	routeLat := make([]time.Duration, 0, b.N)
	directLat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		route()
		routeLat = append(routeLat, time.Since(t0))
		t1 := time.Now()
		straight()
		directLat = append(directLat, time.Since(t1))
	}
	b.StopTimer()
	pct := func(d []time.Duration, p float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(float64(len(s))*p))].Microseconds())
	}
	rp50, rp99, dp50, dp99 := pct(routeLat, 0.50), pct(routeLat, 0.99), pct(directLat, 0.50), pct(directLat, 0.99)
	b.ReportMetric(rp50, "route-p50-µs")
	b.ReportMetric(rp99, "route-p99-µs")
	b.ReportMetric(dp50, "direct-p50-µs")
	b.ReportMetric(dp99, "direct-p99-µs")
	b.ReportMetric(rp50/dp50, "ratio-p50")
	b.ReportMetric(rp99/dp99, "ratio-p99")
}
