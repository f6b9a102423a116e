package relay

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/netpoll"
)

// TestDetachedStream, with a reader goroutine per stream and with the epoll close watcher: the same bytes, the
// client's hang-up noticed without a write, resume and shutdown.
func TestDetachedStream(t *testing.T) {
	t.Parallel()
	t.Run("reader goroutine", func(t *testing.T) { t.Parallel(); detachedStream(t, nil, false) })
	for _, lean := range []bool{false, true} {
		t.Run(map[bool]string{false: "close watcher", true: "lean"}[lean], func(t *testing.T) {
			t.Parallel()
			w, err := netpoll.New()
			if err != nil {
				t.Skip(err)
			}
			t.Cleanup(func() { _ = w.Close() })
			detachedStream(t, w, lean)
			if w.Watching() != 0 || w.Fired() == 0 {
				t.Errorf("watcher: %d still watched, %d fired", w.Watching(), w.Fired())
			}
		})
	}
}

func detachedStream(t *testing.T, watcher *netpoll.Watcher, lean bool) {
	b := NewMemoryBroker(MemoryBrokerConfig{})
	h := NewHub(b, HubConfig{Now: fixedNow, DetachHTTP1: true, CloseWatcher: watcher, LeanStreams: lean}, nil, nil)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "sb-access=refreshed; Path=/; HttpOnly") // as the auth middleware would
		h.ServeStream(w, r, r.Header.Get("X-Test-User"), time.Time{})
	}))
	t.Cleanup(srv.Close)

	c := dial(t, srv.URL, "u1", "")
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache, no-transform",
		"Connection": "keep-alive", "X-Accel-Buffering": "no", "Set-Cookie": "sb-access=refreshed; Path=/; HttpOnly",
	} {
		if got := c.resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if c.resp.StatusCode != 200 || len(c.resp.TransferEncoding) != 1 || c.resp.TransferEncoding[0] != "chunked" {
		t.Errorf("status %d, transfer encoding %v", c.resp.StatusCode, c.resp.TransferEncoding)
	}
	wantConn := "event: CONNECTED\n" +
		`data: {"type":"CONNECTED","timestamp":"2025-01-01T12:00:00.000Z","data":{"userId":"u1","timestamp":"2025-01-01T12:00:00.000Z"}}` + "\n" +
		"id: " + b.epoch + "-0\nretry: 3000\n\n"
	if got := c.next(t).Raw; got != wantConn {
		t.Fatalf("CONNECTED:\n got %q\nwant %q", got, wantConn)
	}
	mustJoin(t, h, "9c2e", "u1")
	mustPublish(t, h, "9c2e", TypingStopEvent("6b1f", "9c2e"), PublishOptions{})
	want := "event: USER_TYPING\n" +
		`data: {"type":"USER_TYPING","timestamp":"2025-01-01T12:00:00.000Z","data":{"userId":"6b1f","conversationId":"9c2e","isTyping":false}}` + "\n" +
		"id: " + b.epoch + "-1\n\n"
	first := c.next(t)
	if first.Raw != want {
		t.Fatalf("frame:\n got %q\nwant %q", first.Raw, want)
	}

	// The client going away is noticed without any write.
	c.Close()
	waitFor(t, func() bool { return h.Streams() == 0 })

	mustPublish(t, h, "9c2e", textEvent("E", "missed"), PublishOptions{})
	c2 := dial(t, srv.URL, "u1", first.ID)
	c2.next(t)
	if ev := c2.next(t); !strings.Contains(ev.Data, `"missed"`) {
		t.Fatalf("resume got %v", ev)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.Shutdown(ctx)
	var tail string
	for ev := range c2.events {
		tail += ev.Raw
	}
	if !strings.HasPrefix(tail, "retry: ") || h.Streams() != 0 {
		t.Fatalf("after shutdown: tail %q, streams %d", tail, h.Streams())
	}
}
