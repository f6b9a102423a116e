package relay

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// sseEvent is one parsed frame (or comment) read off a stream.
type sseEvent struct {
	ID, Event, Data, Retry string
	Comment                string
	Raw                    string
}

// sseClient reads a real SSE response over HTTP.
type sseClient struct {
	resp   *http.Response
	events chan sseEvent
	done   chan struct{}
	cancel context.CancelFunc
}

// dial opens GET url as user (the test auth shim reads X-Test-User) with an optional Last-Event-ID.
func dial(t *testing.T, url, user, lastID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("X-Test-User", user)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := isolatedClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &sseClient{resp: resp, events: make(chan sseEvent, 4096), done: make(chan struct{}), cancel: cancel}
	if resp.StatusCode != http.StatusOK {
		close(c.done)
		close(c.events)
		return c
	}
	go c.read()
	t.Cleanup(c.Close)
	return c
}

func (c *sseClient) Close() {
	c.cancel()
	<-c.done
}

func (c *sseClient) read() {
	defer close(c.done)
	defer close(c.events)
	defer c.resp.Body.Close()
	br := bufio.NewReader(c.resp.Body)
	var ev sseEvent
	var raw strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		raw.WriteString(line)
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			ev.Raw = raw.String()
			raw.Reset()
			if ev != (sseEvent{Raw: ev.Raw}) {
				c.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			c.events <- sseEvent{Comment: line, Raw: raw.String()}
			raw.Reset()
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.Data = line[6:]
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "retry: "):
			ev.Retry = line[7:]
		}
	}
}

// next returns the next event that is not a comment, failing after a generous timeout (a hang guard, not a
// timing assertion).
func (c *sseClient) next(t *testing.T) sseEvent {
	t.Helper()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatalf("stream ended while waiting for an event")
			}
			if ev.Comment != "" {
				continue
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatalf("no event within 10s")
		}
	}
}

// expectEnd reads until the stream ends, failing on any event frame (comments are allowed).
func (c *sseClient) expectEnd(t *testing.T) {
	t.Helper()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return
			}
			if ev.Comment == "" && ev.Event != "" {
				t.Fatalf("unexpected event %s %s before end", ev.Event, ev.Data)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("stream did not end within 10s")
		}
	}
}

// quiet asserts no event frame arrives before a marker: the caller publishes a marker event to the user afterwards
// and we read up to it. This avoids sleeping to prove absence.
func (c *sseClient) until(t *testing.T, marker string) []sseEvent {
	t.Helper()
	var got []sseEvent
	for {
		ev := c.next(t)
		if ev.Event == "MARKER" && strings.Contains(ev.Data, marker) {
			return got
		}
		got = append(got, ev)
	}
}

// testServer serves ServeStream with a test-only auth shim: the X-Test-User header (or the "u" cookie) is the
// internal user id.
func testServer(t *testing.T, h *Hub) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.Header.Get("X-Test-User")
		if c, err := r.Cookie("u"); err == nil && user == "" {
			user = c.Value
		}
		if user == "" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeStream(w, r, user, time.Time{})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// httptestServerExpiring is testServer with streams whose token expires after d.
func httptestServerExpiring(t *testing.T, h *Hub, d time.Duration) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeStream(w, r, r.Header.Get("X-Test-User"), time.Now().Add(d))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newTestHub(t *testing.T, b Broker, cfg HubConfig) *Hub {
	t.Helper()
	h := NewHub(b, cfg, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.Start(ctx); err != nil {
		t.Fatalf("start hub: %v", err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		h.Shutdown(sctx)
		scancel()
		cancel()
	})
	return h
}

func marker(t *testing.T, h *Hub, user, name string) {
	t.Helper()
	if err := h.PublishToUser(context.Background(), user, Event{Type: "MARKER", Data: []byte(fmt.Sprintf("%q", name))}); err != nil {
		t.Fatal(err)
	}
}

func mustPublish(t *testing.T, h *Hub, room string, ev Event, opt PublishOptions) {
	t.Helper()
	if err := h.PublishToRoom(context.Background(), room, ev, opt); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func mustJoin(t *testing.T, h *Hub, room, user string) {
	t.Helper()
	if err := h.Join(context.Background(), room, user); err != nil {
		t.Fatalf("join: %v", err)
	}
}

func textEvent(typ, s string) Event { return Event{Type: typ, Data: []byte(fmt.Sprintf("%q", s))} }
