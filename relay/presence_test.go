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

// TestPresenceOrder: quick reconnects announce alternating USER_ONLINE and USER_OFFLINE, ending offline (never an
// OFFLINE overtaken by the ONLINE before it, which would leave the user "online").
func TestPresenceOrder(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{Presence: true})
	srv := testServer(t, h)
	mustJoin(t, h, "r", "alice")
	mustJoin(t, h, "r", "bob")
	alice := dial(t, srv.URL, "alice", "")
	alice.next(t)
	for range 15 {
		dial(t, srv.URL, "bob", "").Close()
	}
	// Read until the announcements balance (each ONLINE has had its OFFLINE), checking the order on the way.
	// Whatever is still in flight then is not looked at: a marker could overtake it.
	var got []sseEvent
	for online := 0; len(got) == 0 || online*2 != len(got); {
		e := alice.next(t)
		want := TypeUserOnline
		if len(got)%2 == 1 {
			want = TypeUserOffline
		}
		got = append(got, e)
		if e.Event != want {
			t.Fatalf("event %d is %s, want %s (so far: %v)", len(got)-1, e.Event, want, got)
		}
		if e.Event == TypeUserOnline {
			online++
		}
	}
}
