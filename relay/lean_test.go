package relay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/netpoll"
)

// leanHub is a started hub serving lean detached streams, and its test server (X-Test-User names the user;
// X-Test-Expires, a duration, the token's remaining life).
func leanHub(t *testing.T, cfg HubConfig) (*Hub, *httptest.Server) {
	t.Helper()
	w, err := netpoll.New()
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	cfg.DetachHTTP1, cfg.CloseWatcher, cfg.LeanStreams = true, w, true
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), cfg)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var exp time.Time
		if d, err := time.ParseDuration(r.Header.Get("X-Test-Expires")); err == nil {
			exp = time.Now().Add(d)
		}
		h.ServeStream(rw, r, r.Header.Get("X-Test-User"), exp)
	}))
	t.Cleanup(srv.Close)
	return h, srv
}

// TestLeanHeartbeat: an idle lean stream still gets its keep-alive comments, with no goroutine of its own.
func TestLeanHeartbeat(t *testing.T) {
	t.Parallel()
	h, srv := leanHub(t, HubConfig{Heartbeat: 80 * time.Millisecond})
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: t\r\nX-Test-User: u1\r\n\r\n")
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	seen := 0
	for seen < 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d heartbeats: %v", seen, err)
		}
		if strings.HasPrefix(line, ": keep-alive ") {
			seen++
		}
	}
	if h.Streams() != 1 {
		t.Errorf("streams %d", h.Streams())
	}
}

// TestLeanExpiry: a lean stream ends when the token expires, with the end of the chunked body.
func TestLeanExpiry(t *testing.T) {
	t.Parallel()
	h, srv := leanHub(t, HubConfig{})
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-Test-User", "u1")
	req.Header.Set("X-Test-Expires", "300ms")
	resp, err := isolatedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(resp.Body); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("body did not end cleanly: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end at expiry")
	}
	waitFor(t, func() bool { return h.Streams() == 0 })
}

// TestLeanSlowClientHandOff: a client that stops reading makes a write outlast leanWriteSlice; the stream gets a
// goroutine of its own and, once the client reads again, every event arrives, in order, none twice.
func TestLeanSlowClientHandOff(t *testing.T) {
	t.Parallel()
	h, srv := leanHub(t, HubConfig{QueueSize: 4096})
	d := net.Dialer{Control: nil}
	raw, err := d.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fmt.Fprintf(raw, "GET / HTTP/1.1\r\nHost: t\r\nX-Test-User: slow\r\n\r\n")
	br := bufio.NewReaderSize(raw, 4096)
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "event: CONNECTED") {
			break
		}
	}
	mustJoin(t, h, "r", "slow")
	pad := strings.Repeat("x", 30_000)
	const n = 700 // 21 MB: more than the kernel's buffers of a loopback connection hold (up to ~10 MB)
	go func() {
		for i := range n {
			if err := h.PublishToRoom(context.Background(), "r", Event{Type: "E", Data: []byte(fmt.Sprintf(`{"i":%d,"p":%q}`, i, pad))}, PublishOptions{}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	waitFor(t, func() bool { return counterValue(t, h.m.leanSlow) == 1 })
	next := 0
	raw.SetReadDeadline(time.Now().Add(30 * time.Second))
	for next < n {
		line, err := br.ReadString('\n')
		if err != nil {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Logf("%s", buf[:n])
			t.Fatalf("after event %d: %v", next, err)
		}
		if !strings.HasPrefix(line, `data: {"type":"E"`) {
			continue
		}
		want := fmt.Sprintf(`"data":{"i":%d,`, next)
		if !strings.Contains(line, want) {
			t.Fatalf("event %d out of order: %.80s", next, line)
		}
		next++
	}
}

// TestLeanManyStreams: many lean streams of many users at once, events to all of them, clients leaving while
// events flow (run with -race): every stream that stays gets every event, and the hub ends with none open.
func TestLeanManyStreams(t *testing.T) {
	t.Parallel()
	h, srv := leanHub(t, HubConfig{})
	const users, events = 60, 50
	clients := make([]*sseClient, users)
	for i := range clients {
		clients[i] = dial(t, srv.URL, fmt.Sprintf("u%d", i), "")
		clients[i].next(t) // CONNECTED
		mustJoin(t, h, "room", fmt.Sprintf("u%d", i))
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range events {
			mustPublish(t, h, "room", textEvent("E", fmt.Sprint(i)), PublishOptions{})
			if i == events/2 {
				for _, c := range clients[:users/3] {
					c.Close()
				}
			}
		}
	}()
	for _, c := range clients[users/3:] {
		for i := range events {
			ev := c.next(t)
			if !strings.Contains(ev.Data, fmt.Sprintf(`"data":"%d"`, i)) {
				t.Fatalf("event %d: %+v", i, ev)
			}
		}
	}
	wg.Wait()
	for _, c := range clients {
		c.Close()
	}
	waitFor(t, func() bool { return h.Streams() == 0 })
}
