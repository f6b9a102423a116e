package relay

import (
	"github.com/qryptchat/suparelay/internal/chromium"

	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/netpoll"
)

const browserPage = `<!doctype html><meta charset="utf-8"><title>relay</title><script>
window.log = [];
const es = new EventSource('/api/events');
es.addEventListener('CONNECTED', e => log.push({t: 'CONNECTED', id: e.lastEventId}));
es.addEventListener('E', e => log.push({t: 'E', id: e.lastEventId, d: JSON.parse(e.data).data}));
es.onerror = () => log.push({t: 'error', rs: es.readyState});
</script>`

func launchChromium(t *testing.T) *chromium.Browser {
	t.Helper()
	if chromium.Path() == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (make test installs Debian's chromium)")
		}
		t.Skip("chromium not installed")
	}
	b, err := chromium.Launch(context.Background(), chromium.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// TestBrowserEventSourceResume drives a real headless Chromium: EventSource connects, gets CONNECTED and an
// event, the server drops the stream, the browser reconnects by itself with Last-Event-ID, and receives what was
// published in between, once each.
func TestBrowserEventSourceResume(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"net-http", "detached", "lean"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cfg := HubConfig{Retry: time.Second, DetachHTTP1: mode != "net-http"}
			if mode == "lean" {
				w, err := netpoll.New()
				if err != nil {
					t.Skip(err)
				}
				t.Cleanup(func() { _ = w.Close() })
				cfg.CloseWatcher, cfg.LeanStreams = w, true
			}
			browserResume(t, cfg)
		})
	}
}

func browserResume(t *testing.T, cfg HubConfig) {
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), cfg)

	var mu sync.Mutex
	var lastIDs []string
	gate := make(chan struct{}) // closed when reconnects may proceed
	close(gate)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			http.SetCookie(w, &http.Cookie{Name: "u", Value: "browser-user", Path: "/"})
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, browserPage)
		case "/api/events":
			c, err := r.Cookie("u") // the test-only auth shim
			if err != nil {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			mu.Lock()
			g := gate
			lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
			mu.Unlock()
			select {
			case <-g:
			case <-r.Context().Done():
				return
			}
			h.ServeStream(w, r, c.Value, time.Time{})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	browser := launchChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	page, err := browser.NewContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := page.Navigate(ctx, srv.URL+"/"); err != nil {
		t.Fatal(err)
	}

	type entry struct{ T, ID, D string }
	readLog := func() []entry {
		var out []entry
		if err := page.Eval(ctx, "window.log || []", &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	waitLog := func(cond func([]entry) bool) []entry {
		t.Helper()
		for i := 0; i < 300; i++ {
			if l := readLog(); cond(l) {
				return l
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("browser log never matched: %+v", readLog())
		return nil
	}
	count := func(l []entry, typ string) int {
		n := 0
		for _, e := range l {
			if e.T == typ {
				n++
			}
		}
		return n
	}
	waitLog(func(l []entry) bool { return count(l, "CONNECTED") == 1 })
	if err := h.PublishToUser(context.Background(), "browser-user", textEvent("E", "one")); err != nil {
		t.Fatal(err)
	}
	l := waitLog(func(l []entry) bool { return count(l, "E") == 1 })
	firstID := l[len(l)-1].ID

	// Hold reconnects at the door, drop the stream, publish while the browser is away, then let it back in.
	mu.Lock()
	gate = make(chan struct{})
	held := gate
	mu.Unlock()
	if n := h.CloseUserStreams("browser-user"); n != 1 {
		t.Fatalf("closed %d streams, want 1", n)
	}
	waitFor(t, func() bool { return h.Streams() == 0 })
	for _, s := range []string{"two", "three"} {
		if err := h.PublishToUser(context.Background(), "browser-user", textEvent("E", s)); err != nil {
			t.Fatal(err)
		}
	}
	close(held)
	l = waitLog(func(l []entry) bool { return count(l, "E") >= 3 && count(l, "CONNECTED") == 2 })
	time.Sleep(200 * time.Millisecond) // a duplicate, if any, would show up right behind
	l = readLog()
	var got []string
	for _, e := range l {
		if e.T == "E" {
			got = append(got, e.D)
		}
	}
	if strings.Join(got, ",") != "one,two,three" {
		t.Fatalf("browser received %v, want one,two,three (log %+v)", got, l)
	}
	if out, err := browser.CheckLoopback(); err != nil || len(out) > 0 {
		t.Errorf("Chromium reached beyond loopback: %v (err %v)", out, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lastIDs) < 2 || lastIDs[0] != "" || lastIDs[len(lastIDs)-1] != firstID {
		t.Fatalf("Last-Event-ID headers %q, want the reconnect to send %q", lastIDs, firstID)
	}
}
