package relay

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// redisHubCfg is redisHub with a config.
func redisHubCfg(t *testing.T, url, prefix string, cfg HubConfig) *Hub {
	t.Helper()
	b, err := NewRedisBrokerFromURL(url, RedisBrokerConfig{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	h := newTestHub(t, b, cfg)
	if err := h.Ready(context.Background()); err != nil {
		t.Fatalf("hub not ready: %v", err)
	}
	return h
}

// expectRefused opens a stream for user at srvURL and wants the per-user cap's 429.
func expectRefused(t *testing.T, srvURL, user string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srvURL, nil)
	req.Header.Set("X-Test-User", user)
	resp, err := isolatedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || string(body) != `{"error":"Too many connections"}` {
		t.Fatalf("stream for %s at %s: %d %s, want 429 Too many connections", user, srvURL, resp.StatusCode, body)
	}
}

// noPresence reads c up to a marker and fails on any presence event.
func noPresence(t *testing.T, h *Hub, c *sseClient, user, name string) {
	t.Helper()
	marker(t, h, user, name)
	for _, e := range c.until(t, name) {
		if e.Event == TypeUserOnline || e.Event == TypeUserOffline {
			t.Fatalf("unexpected %s %s", e.Event, e.Data)
		}
	}
}

// TestClusterPresenceAndCaps runs one scenario on one node and on two nodes sharing Redis: the answers must be the
// same. Bob's streams are spread over the nodes; alice watches his presence in a shared room.
func TestClusterPresenceAndCaps(t *testing.T) {
	t.Parallel()
	redisURL := testenv.RedisURL(t)
	for _, nodes := range []int{1, 2} {
		t.Run(map[int]string{1: "one-node", 2: "two-nodes"}[nodes], func(t *testing.T) {
			t.Parallel()
			prefix := testRedisPrefix(t, redisURL)
			cfg := HubConfig{Presence: true, MaxStreamsPerUser: 2}
			hubA := redisHubCfg(t, redisURL, prefix, cfg)
			hubB := hubA
			if nodes == 2 {
				hubB = redisHubCfg(t, redisURL, prefix, cfg)
			}
			srvA, srvB := testServer(t, hubA), testServer(t, hubB)
			mustJoin(t, hubA, "r", "alice")
			mustJoin(t, hubB, "r", "bob")
			alice := dial(t, srvA.URL, "alice", "")
			alice.next(t)

			bobA := dial(t, srvA.URL, "bob", "")
			bobA.next(t)
			if ev := alice.next(t); ev.Event != TypeUserOnline || !strings.Contains(ev.Data, `"userId":"bob"`) {
				t.Fatalf("alice got %s %s, want USER_ONLINE bob", ev.Event, ev.Data)
			}
			bobB := dial(t, srvB.URL, "bob", "")
			bobB.next(t)
			noPresence(t, hubB, alice, "alice", "m1") // bob's second stream: no transition

			// Bob holds two streams, one per node: a third is refused on either node.
			expectRefused(t, srvA.URL, "bob")
			expectRefused(t, srvB.URL, "bob")

			bobA.Close()
			left := 1 // alice's
			if nodes == 1 {
				left = 2 // and bob's other
			}
			waitFor(t, func() bool { return hubA.Streams() == left })
			noPresence(t, hubA, alice, "alice", "m2") // still online through the other stream
			again := dial(t, srvA.URL, "bob", "")     // the closed stream no longer counts
			again.next(t)
			expectRefused(t, srvB.URL, "bob")
			again.Close()
			bobB.Close()
			if ev := alice.next(t); ev.Event != TypeUserOffline || !strings.Contains(ev.Data, `"userId":"bob"`) {
				t.Fatalf("alice got %s %s, want USER_OFFLINE bob", ev.Event, ev.Data)
			}
			noPresence(t, hubB, alice, "alice", "m3") // exactly one
		})
	}
}

// TestKilledNodeLeasesExpire: a node process killed with streams open (no release, no shutdown) stops counting
// against the user's cap and the user is announced offline, once, when its leases lapse.
func TestKilledNodeLeasesExpire(t *testing.T) {
	t.Parallel()
	redisURL := testenv.RedisURL(t)
	prefix := testRedisPrefix(t, redisURL)
	const ttl = 2 * time.Second
	env := []string{"RELAY_TEST_PRESENCE=1", "RELAY_TEST_LEASE_TTL=" + ttl.String(), "RELAY_TEST_MAX_PER_USER=1"}
	nodeURL, node := startNodeCmd(t, redisURL, prefix, env...)
	hub := redisHubCfg(t, redisURL, prefix, HubConfig{Presence: true, StreamLeaseTTL: ttl, MaxStreamsPerUser: 1})
	srv := testServer(t, hub)
	mustJoin(t, hub, "r", "alice")
	postForm(t, nodeURL+"/join", url.Values{"room": {"r"}, "user": {"bob"}})
	alice := dial(t, srv.URL, "alice", "")
	alice.next(t)
	bob := dial(t, nodeURL+"/events", "bob", "")
	bob.next(t)
	if ev := alice.next(t); ev.Event != TypeUserOnline || !strings.Contains(ev.Data, `"userId":"bob"`) {
		t.Fatalf("alice got %s %s, want USER_ONLINE bob (announced by the other process)", ev.Event, ev.Data)
	}
	expectRefused(t, srv.URL, "bob") // his stream on the other process counts here

	if err := node.Process.Kill(); err != nil { // SIGKILL: nothing released
		t.Fatal(err)
	}
	killed := time.Now()
	ev := alice.next(t)
	if ev.Event != TypeUserOffline || !strings.Contains(ev.Data, `"userId":"bob"`) {
		t.Fatalf("alice got %s %s, want USER_OFFLINE bob", ev.Event, ev.Data)
	}
	if d := time.Since(killed); d > 3*ttl+time.Second { // TTL, a sweep (TTL/9), a publish; slack for a busy box
		t.Fatalf("offline %v after the kill, want within the lease TTL plus a sweep", d)
	}
	again := dial(t, srv.URL, "bob", "")
	if again.resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's stream after his node died: %d, want 200", again.resp.StatusCode)
	}
	again.next(t)
	if ev := alice.next(t); ev.Event != TypeUserOnline {
		t.Fatalf("alice got %s %s, want USER_ONLINE bob", ev.Event, ev.Data)
	}
	noPresence(t, hub, alice, "alice", "end")
}

// TestCapFallsBackPerNode: with the broker unreachable, the per-user cap is this node's count, never unlimited.
func TestCapFallsBackPerNode(t *testing.T) {
	t.Parallel()
	b := unreachableRedisBroker(t)
	h := newTestHub(t, b, HubConfig{MaxStreamsPerUser: 2, Presence: true})
	srv := testServer(t, h)
	for range 2 {
		if c := dial(t, srv.URL, "u", ""); c.resp.StatusCode != http.StatusOK {
			t.Fatalf("stream with the broker down: %d", c.resp.StatusCode)
		}
	}
	expectRefused(t, srv.URL, "u")
	if got := counterValue(t, h.m.brokerErrors.WithLabelValues("acquire")); got < 2 {
		t.Fatalf("acquire errors counted %v", got)
	}
}
