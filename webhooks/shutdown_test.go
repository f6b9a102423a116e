package webhooks

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestWebhookShutdownFinishesInFlight: Shutdown stops claiming but lets the attempt in flight finish when its
// context allows; the delivery is then settled, not attempted again.
func TestWebhookShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	rec, url := newRecorder(t, func(int, *http.Request) int {
		started <- struct{}{}
		time.Sleep(200 * time.Millisecond)
		return http.StatusOK
	})
	store := NewMemoryStore()
	d := newOrFail(t, Config{SigningSecret: "s", AllowNets: loopback, Store: store, PollInterval: 10 * time.Millisecond})
	runDeliverer(t, d)
	if !d.Enqueue(t.Context(), Delivery{URL: url, Event: "message.created"}) {
		t.Fatal("Enqueue = false")
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if counterValue(t, d.m.delivered) != 1 {
		t.Fatal("the attempt in flight did not finish before Shutdown returned")
	}
	if d.Enqueue(t.Context(), Delivery{URL: url, Event: "message.created"}) {
		t.Error("Enqueue after Shutdown = true")
	}
	if res, _ := store.Claim(t.Context(), 10, time.Second); res.Pending != 0 {
		t.Errorf("pending after delivery = %d", res.Pending)
	}
	if n := len(rec.snapshot()); n != 1 {
		t.Errorf("hits = %d", n)
	}
}

// TestWebhookShutdownGivesBack: when Shutdown's context ends first, the attempt is canceled and the delivery goes
// back to the store, due at once and not counted: the next deliverer makes it as attempt 1 again, same id.
func TestWebhookShutdownGivesBack(t *testing.T) {
	t.Parallel()
	rec, url := newRecorder(t, func(n int, r *http.Request) int {
		if n == 0 {
			<-r.Context().Done()
		}
		return http.StatusOK
	})
	store := NewMemoryStore()
	cfg := Config{SigningSecret: "s", AllowNets: loopback, Store: store, PollInterval: 10 * time.Millisecond}
	a := newOrFail(t, cfg)
	runDeliverer(t, a)
	if !a.Enqueue(t.Context(), Delivery{URL: url, Event: "message.created"}) {
		t.Fatal("Enqueue = false")
	}
	waitFor(t, "first attempt in flight", func() bool { return len(rec.snapshot()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	b := newOrFail(t, cfg)
	runDeliverer(t, b)
	waitFor(t, "delivered by the next deliverer", func() bool { return counterValue(t, b.m.delivered) == 1 })
	hits := rec.snapshot()
	if len(hits) != 2 || hits[0].delivery != hits[1].delivery || hits[1].attempt != "1" {
		t.Errorf("hits = %+v; want the same delivery twice, the canceled attempt not counted", hits)
	}
}

// TestWebhookStoreDown: with the store unreachable, Enqueue refuses at once (counted), Run keeps trying without
// failing, and Shutdown still returns promptly.
func TestWebhookStoreDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	d := newOrFail(t, Config{SigningSecret: "s", Store: NewRedisStore(c, "down:"), PollInterval: 10 * time.Millisecond})
	stop := runDeliverer(t, d)
	if d.Enqueue(t.Context(), Delivery{URL: "https://example.org/h", Event: "message.created"}) {
		t.Fatal("Enqueue = true with the store down")
	}
	if counterValue(t, d.m.dropped) != 1 {
		t.Errorf("dropped = %d, want 1", counterValue(t, d.m.dropped))
	}
	waitFor(t, "Run retrying the store", func() bool { return counterValue(t, d.m.storeErrors) >= 3 })
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown hung with the store down")
	}
}
