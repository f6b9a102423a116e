package relay

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
)

// flakyBroker is a MemoryBroker whose Publish and Reset fail while down is set, like a Redis that went away.
type flakyBroker struct {
	*MemoryBroker
	down   atomic.Bool
	resets atomic.Int32
}

func (f *flakyBroker) Publish(ctx context.Context, data []byte) (Position, error) {
	if f.down.Load() {
		return Position{}, ErrBrokerUnavailable
	}
	return f.MemoryBroker.Publish(ctx, data)
}

func (f *flakyBroker) Reset(ctx context.Context) (Position, error) {
	if f.down.Load() {
		return Position{}, ErrBrokerUnavailable
	}
	f.resets.Add(1)
	return f.MemoryBroker.Reset(ctx)
}

// An event that reached only this node (the broker refused it) makes the hub start a new epoch once the broker is
// back; the gap ends every stream with a retry hint, and the old ids can no longer be resumed silently.
func TestLostPublishStartsNewEpochAndEndsStreams(t *testing.T) {
	t.Parallel()
	b := &flakyBroker{MemoryBroker: NewMemoryBroker(MemoryBrokerConfig{})}
	h := newTestHub(t, b, HubConfig{})
	srv := testServer(t, h)
	c := dial(t, srv.URL, "u", "")
	connected := c.next(t)
	b.down.Store(true)
	if err := h.PublishToUser(context.Background(), "u", textEvent("NEW_MESSAGE", "local only")); err != nil {
		t.Fatal(err)
	}
	if ev := c.next(t); ev.Event != "NEW_MESSAGE" {
		t.Fatalf("local fallback: got %s", ev.Event)
	}
	b.down.Store(false)
	var tail string
	for ev := range c.events { // the stream must end by itself once the reset lands
		tail += ev.Raw
	}
	if !strings.Contains(tail, "retry: ") {
		t.Fatalf("the stream ended without a retry hint: %q", tail)
	}
	if b.resets.Load() != 1 {
		t.Fatalf("%d resets, want 1", b.resets.Load())
	}
	head, _ := b.Head(context.Background())
	if strings.HasPrefix(connected.ID, head.Epoch+"-") {
		t.Fatalf("epoch unchanged (%s) after a lost publish", head.Epoch)
	}
}

// A gap announced by the broker ends the streams of every node, with a retry hint.
func TestGapEndsStreamsWithRetryHint(t *testing.T) {
	t.Parallel()
	b := NewMemoryBroker(MemoryBrokerConfig{})
	h := newTestHub(t, b, HubConfig{})
	srv := testServer(t, h)
	c1, c2 := dial(t, srv.URL, "u", ""), dial(t, srv.URL, "v", "")
	c1.next(t)
	c2.next(t)
	if _, err := b.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*sseClient{c1, c2} {
		var tail string
		for ev := range c.events {
			tail += ev.Raw
		}
		if !strings.Contains(tail, "retry: ") {
			t.Fatalf("final bytes %q, want a retry hint", tail)
		}
	}
	waitFor(t, func() bool { return h.Streams() == 0 })
}
