package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/api"
	"github.com/qryptchat/suparelay/internal/testenv"
	"github.com/qryptchat/suparelay/relay"
)

// harness runs the real API handlers in-process against the real local stack: the gateway in front of the real
// Supabase Auth, Storage and PostgREST, PostgreSQL with the project's migrations. storage looks at Storage directly.
type harness struct {
	t       testing.TB
	srv     *httptest.Server
	hub     *relay.Hub
	storage *storageAdmin
	client  *http.Client
}

func newHarness(t testing.TB) *harness { t.Helper(); return newHarnessWith(t, nil) }

// newHarnessWith lets a test adjust the handlers' configuration (e.g. add a webhook deliverer).
func newHarnessWith(t testing.TB, adjust func(*api.Config)) *harness {
	t.Helper()
	ts := newTestServer(t, testServerConfig{SupabaseURL: testenv.SupabaseURL(t), Adjust: adjust})
	return &harness{t: t, srv: ts.srv, hub: ts.hub, storage: newStorageAdmin(t), client: ts.srv.Client()}
}

// resp is a decoded answer.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.Body)
	}
	return m
}

func (r resp) Err(t testing.TB) string {
	t.Helper()
	s, _ := r.JSON(t)["error"].(string)
	return s
}

// do sends method path with a Bearer token (when non-empty) and a JSON body (when non-nil).
func (h *harness) do(method, path, token string, body any) resp {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) resp {
	h.t.Helper()
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{Status: res.StatusCode, Header: res.Header, Body: b}
}

// mustStatus fails unless r has status want.
func mustStatus(t testing.TB, r resp, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status = %d, want %d; body %s", r.Status, want, r.Body)
	}
}

// sseEvent is one received event.
type sseEvent struct {
	Type string
	ID   string
	Data map[string]any // the envelope's "data"
	Raw  string
}

// stream is a real SSE connection to /api/events.
type stream struct {
	t      testing.TB
	cancel context.CancelFunc
	events chan sseEvent
	status int
	once   sync.Once
}

// openStream connects as the token's user and waits for CONNECTED.
func (h *harness) openStream(token string) *stream {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := h.client.Do(req)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	st := &stream{t: h.t, cancel: cancel, events: make(chan sseEvent, 256), status: res.StatusCode}
	h.t.Cleanup(st.close)
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		h.t.Fatalf("events: status %d: %s", res.StatusCode, b)
	}
	go func() {
		defer res.Body.Close()
		defer close(st.events)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var ev sseEvent
		var raw strings.Builder
		for sc.Scan() {
			line := sc.Text()
			raw.WriteString(line + "\n")
			switch {
			case line == "":
				if ev.Type != "" {
					ev.Raw = raw.String()
					st.events <- ev
				}
				ev = sseEvent{}
				raw.Reset()
			case strings.HasPrefix(line, "event: "):
				ev.Type = line[len("event: "):]
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[len("id: "):]
			case strings.HasPrefix(line, "data: "):
				var env struct {
					Type string         `json:"type"`
					Data map[string]any `json:"data"`
				}
				if err := json.Unmarshal([]byte(line[len("data: "):]), &env); err == nil {
					ev.Data = env.Data
				}
			}
		}
	}()
	if ev := st.next(5 * time.Second); ev.Type != "CONNECTED" {
		h.t.Fatalf("first event = %q, want CONNECTED", ev.Type)
	}
	return st
}

func (s *stream) close() { s.once.Do(s.cancel) }

// next returns the next event, failing after timeout.
func (s *stream) next(timeout time.Duration) sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("stream closed")
		}
		return ev
	case <-time.After(timeout):
		s.t.Fatal("no event within timeout")
	}
	return sseEvent{}
}

// expect waits for the next event of type typ, failing on any other event first.
func (s *stream) expect(typ string) sseEvent {
	s.t.Helper()
	ev := s.next(5 * time.Second)
	if ev.Type != typ {
		s.t.Fatalf("event = %s (%s), want %s", ev.Type, ev.Raw, typ)
	}
	return ev
}

// quiet asserts that no event arrives within d.
func (s *stream) quiet(d time.Duration) {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			s.t.Fatalf("unexpected event %s: %s", ev.Type, ev.Raw)
		}
	case <-time.After(d):
	}
}
