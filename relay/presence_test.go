package relay

import (
	"context"
	"strings"
	"testing"
)

// TestPresence: with Presence on, a user's first stream announces USER_ONLINE to the members of the rooms the user
// joined (not to the user), and closing the last stream announces USER_OFFLINE.
func TestPresence(t *testing.T) {
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{Presence: true})
	srv := testServer(t, h)
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		if err := h.Join(ctx, "room-1", u); err != nil {
			t.Fatal(err)
		}
	}
	alice := dial(t, srv.URL, "alice", "")
	if ev := alice.next(t); ev.Event != "CONNECTED" {
		t.Fatalf("first event %q", ev.Event)
	}
	bob := dial(t, srv.URL, "bob", "")
	if ev := bob.next(t); ev.Event != "CONNECTED" {
		t.Fatalf("first event %q", ev.Event)
	}
	ev := alice.next(t)
	if ev.Event != TypeUserOnline || !strings.Contains(ev.Data, `"data":{"userId":"bob"}`) {
		t.Fatalf("alice got %s %s, want USER_ONLINE for bob", ev.Event, ev.Data)
	}
	bob.Close()
	ev = alice.next(t)
	if ev.Event != TypeUserOffline || !strings.Contains(ev.Data, `"data":{"userId":"bob"}`) {
		t.Fatalf("alice got %s %s, want USER_OFFLINE for bob", ev.Event, ev.Data)
	}
	// Bob never receives his own presence: a marker after his reconnection arrives first.
	bob2 := dial(t, srv.URL, "bob", "")
	if ev := bob2.next(t); ev.Event != "CONNECTED" {
		t.Fatalf("first event %q", ev.Event)
	}
	if ev := alice.next(t); ev.Event != TypeUserOnline {
		t.Fatalf("alice got %s, want USER_ONLINE", ev.Event)
	}
	marker(t, h, "bob", "m1")
	for _, e := range bob2.until(t, "m1") {
		if e.Event == TypeUserOnline || e.Event == TypeUserOffline {
			t.Fatalf("bob got his own presence: %s", e.Raw)
		}
	}
}
