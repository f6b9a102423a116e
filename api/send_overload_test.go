package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/api"
	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
	"github.com/qryptchat/suparelay/supa"
)

// Overload with a small PostgREST gate (2 calls in flight, 100 ms queue wait) and many concurrent sends: every
// answer is a 200 or a fast 503 + Retry-After; every 200 is stored and announced, no 503 is stored. Counts are
// asserted; times are only logged (two shared cores).
func TestSendOverload(t *testing.T) {
	stack := testenv.SupabaseURL(t)
	t.Parallel()
	ts := newTestServer(t, testServerConfig{SupabaseURL: stack, Adjust: func(c *api.Config) {
		gated, err := supa.New(supa.Config{URL: stack, AnonKey: devkeys.AnonKey(), ServiceRoleKey: devkeys.ServiceRoleKey(),
			Timeout: 10 * time.Second, MaxConcurrent: 2, QueueWait: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.Supa = gated
	}})
	h := &harness{t: t, srv: ts.srv, hub: ts.hub, client: ts.srv.Client()}
	a, b := testenv.NewUser(t), testenv.NewUser(t)
	conv := newConv(t, h, "group", a, b)
	tokA := a.Token(t, time.Hour)
	bs := h.openStream(b.Token(t, time.Hour))
	warm := sendText(t, h, a, conv, "warm-up", b) // a's profile is cached from here on
	bs.expect("NEW_MESSAGE")

	const n = 40
	type result struct {
		status  int
		id      string
		retry   string
		elapsed time.Duration
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			r := h.do("POST", "/api/messages/send", tokA, map[string]any{"conversationId": conv,
				"encryptedContents": map[string]string{a.ID: fmt.Sprintf(`{"n":%d}`, i), b.ID: fmt.Sprintf(`{"n":%d}`, i)}})
			res := result{status: r.Status, retry: r.Header.Get("Retry-After"), elapsed: time.Since(t0)}
			if r.Status == http.StatusOK {
				m, _ := r.JSON(t)["message"].(map[string]any)
				res.id, _ = m["id"].(string)
			} else {
				checkClean(t, r)
			}
			results[i] = res
		})
	}
	close(start)
	wg.Wait()

	var okIDs []string
	var shed int
	var slowest time.Duration
	for i, r := range results {
		slowest = max(slowest, r.elapsed)
		switch r.status {
		case http.StatusOK:
			if r.id == "" {
				t.Fatalf("send %d: 200 without a message id", i)
			}
			okIDs = append(okIDs, r.id)
		case http.StatusServiceUnavailable:
			if r.retry == "" {
				t.Errorf("send %d: 503 without Retry-After", i)
			}
			shed++
		default:
			t.Errorf("send %d: status %d, want 200 or 503", i, r.status)
		}
	}
	t.Logf("%d sends: %d stored, %d refused with 503; slowest answer %v", n, len(okIDs), shed, slowest.Round(time.Millisecond))
	if shed == 0 {
		t.Logf("nothing was shed (the machine was fast enough); the counts below still hold")
	}

	// Stored: exactly the 200s (plus the warm-up).
	stored := queryStrings(t, `select id::text from messages where conversation_id = $1 and id <> $2 order by 1`, conv, warm["id"])
	slices.Sort(okIDs)
	if !slices.Equal(stored, okIDs) {
		t.Fatalf("stored %d messages, answered 200 for %d:\nstored %v\n200    %v", len(stored), len(okIDs), stored, okIDs)
	}
	// Announced: every 200 reached the recipient's stream, nothing else did.
	var announced []string
	for len(announced) < len(okIDs) {
		ev := bs.next(10 * time.Second)
		if ev.Type != "NEW_MESSAGE" {
			continue
		}
		id, _ := ev.Data["message"].(map[string]any)["id"].(string)
		announced = append(announced, id)
	}
	bs.quiet(300 * time.Millisecond)
	slices.Sort(announced)
	if !slices.Equal(announced, okIDs) {
		t.Fatalf("announced %v, want %v", announced, okIDs)
	}
}

// queryStrings reads one text column as the stack's superuser.
func queryStrings(t testing.TB, sql string, args ...any) []string {
	t.Helper()
	rows, err := testenv.DB(t).Query(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
