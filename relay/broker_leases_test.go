package relay

import (
	"context"
	"slices"
	"testing"
	"time"
)

// conformStreams: the cluster-wide count of a user's streams. The cap counts live leases of every node, the
// first lease and the last release are reported exactly once, renewals put back missing leases.
func conformStreams(t *testing.T, factory brokerFactory) {
	ctx := context.Background()
	b := factory(t, 100)
	subscribe(t, b)
	ttl := time.Minute
	g, err := b.AcquireStream(ctx, "u", "a.1", 2, ttl)
	if err != nil || g != (StreamGrant{OK: true, First: true, Live: 1}) {
		t.Fatalf("first acquire: %+v %v", g, err)
	}
	if g, _ := b.AcquireStream(ctx, "u", "b.1", 2, ttl); g != (StreamGrant{OK: true, Live: 2}) {
		t.Fatalf("second acquire (another node): %+v", g)
	}
	if g, _ := b.AcquireStream(ctx, "u", "a.2", 2, ttl); g.OK || g.Live != 2 || g.First {
		t.Fatalf("acquire over the cap: %+v, want refused", g)
	}
	if g, _ := b.AcquireStream(ctx, "u", "b.1", 2, ttl); !g.OK || g.Live != 2 {
		t.Fatalf("re-acquiring a held lease at the cap: %+v, want ok", g)
	}
	if g, _ := b.AcquireStream(ctx, "v", "a.3", 0, ttl); !g.OK || !g.First {
		t.Fatalf("another user: %+v", g)
	}
	if last, err := b.ReleaseStream(ctx, "u", "a.1", 0); err != nil || last {
		t.Fatalf("release with one left: %v %v", last, err)
	}
	if g, _ := b.AcquireStream(ctx, "u", "a.2", 2, ttl); !g.OK || g.First || g.Live != 2 {
		t.Fatalf("acquire after a release: %+v", g)
	}
	b.ReleaseStream(ctx, "u", "a.2", 0)
	if last, _ := b.ReleaseStream(ctx, "u", "b.1", 0); !last {
		t.Fatal("releasing the last lease: not reported last")
	}
	if last, _ := b.ReleaseStream(ctx, "u", "b.1", 0); last {
		t.Fatal("releasing it again: reported last twice")
	}
	// Renewal puts back missing leases; a user with none before is revived, once.
	revived, err := b.RenewStreams(ctx, map[string][]string{"u": {"a.4", "a.5"}, "v": {"a.3"}}, ttl)
	if err != nil || !slices.Equal(revived, []string{"u"}) {
		t.Fatalf("renew: %v %v, want u revived", revived, err)
	}
	if g, _ := b.AcquireStream(ctx, "u", "a.6", 2, ttl); g.OK || g.Live != 2 {
		t.Fatalf("renewed leases count against the cap: %+v", g)
	}
	if revived, _ := b.RenewStreams(ctx, map[string][]string{"u": {"a.4"}}, ttl); len(revived) != 0 {
		t.Fatalf("renewing again revived %v", revived)
	}
	// Release with a room TTL keeps the memberships alive, like Touch.
	if _, err := b.Join(ctx, "r", "v", 10, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if last, err := b.ReleaseStream(ctx, "v", "a.3", time.Hour); err != nil || !last {
		t.Fatalf("release v: %v %v", last, err)
	}
	time.Sleep(2500 * time.Millisecond)
	if r, _ := b.Rooms(ctx, "v", 0); len(r) != 1 {
		t.Fatalf("memberships not kept by the release's room ttl: %v", r)
	}
	if gone, err := b.ExpireStreams(ctx, 100); err != nil || len(gone) != 0 {
		t.Fatalf("nothing lapsed, yet gone %v %v", gone, err)
	}
}

// conformStreamExpiry: leases that are not renewed lapse; the cap no longer counts them; ExpireStreams reports
// the user once; a user whose leases lapsed unreported is not "first" again.
func conformStreamExpiry(t *testing.T, factory brokerFactory) {
	ctx := context.Background()
	b := factory(t, 100)
	subscribe(t, b)
	short := 1500 * time.Millisecond
	for _, l := range []string{"dead.1", "dead.2"} {
		if g, err := b.AcquireStream(ctx, "u", l, 2, short); err != nil || !g.OK {
			t.Fatalf("acquire %s: %+v %v", l, g, err)
		}
	}
	b.AcquireStream(ctx, "w", "dead.3", 2, short)
	b.AcquireStream(ctx, "kept", "live.1", 2, short)
	if _, err := b.RenewStreams(ctx, map[string][]string{"kept": {"live.1"}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if g, _ := b.AcquireStream(ctx, "u", "live.2", 2, time.Hour); g.OK {
		t.Fatalf("acquire before the leases lapsed: %+v, want refused", g)
	}
	time.Sleep(short + 300*time.Millisecond)
	// A lapsed user's next stream is admitted, and is no transition (nobody was told the user went).
	if g, _ := b.AcquireStream(ctx, "w", "live.3", 2, time.Hour); !g.OK || g.First || g.Live != 1 {
		t.Fatalf("acquire after lapse: %+v, want ok, not first, 1 live", g)
	}
	var gone []string
	waitFor(t, func() bool {
		g, err := b.ExpireStreams(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		gone = append(gone, g...)
		return len(gone) > 0
	})
	if g, _ := b.ExpireStreams(ctx, 100); len(g) != 0 || !slices.Equal(gone, []string{"u"}) {
		t.Fatalf("gone %v then %v, want u once", gone, g)
	}
	if g, _ := b.AcquireStream(ctx, "u", "live.4", 2, time.Hour); !g.OK || !g.First {
		t.Fatalf("acquire after gone: %+v, want first", g)
	}
}
