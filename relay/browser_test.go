package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const browserPage = `<!doctype html><meta charset="utf-8"><title>relay</title><script>
window.log = [];
const es = new EventSource('/api/events');
es.addEventListener('CONNECTED', e => log.push({t: 'CONNECTED', id: e.lastEventId}));
es.addEventListener('E', e => log.push({t: 'E', id: e.lastEventId, d: JSON.parse(e.data).data}));
es.onerror = () => log.push({t: 'error', rs: es.readyState});
</script>`

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (CI installs Debian's chromium)")
	}
	t.Skip("chromium not installed")
	return ""
}

// TestBrowserEventSourceResume drives a real headless Chromium: EventSource connects, gets CONNECTED and an
// event, the server drops the stream, the browser reconnects by itself with Last-Event-ID, and receives what was
// published in between, once each.
func TestBrowserEventSourceResume(t *testing.T) {
	t.Parallel()
	for _, detach := range []bool{false, true} {
		t.Run(map[bool]string{false: "net-http", true: "detached"}[detach], func(t *testing.T) {
			t.Parallel()
			browserResume(t, detach)
		})
	}
}

func browserResume(t *testing.T, detach bool) {
	chromium := chromiumPath(t)
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{Retry: time.Second, DetachHTTP1: detach})

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

	profile, err := os.MkdirTemp("", "relay-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--remote-debugging-port=0", srv.URL+"/")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so cleanup ends its helper processes too
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = os.RemoveAll(profile)
	})
	wsURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if i := strings.Index(sc.Text(), "ws://"); i >= 0 && strings.Contains(sc.Text(), "DevTools listening") {
				wsURL <- sc.Text()[i:]
			}
		}
	}()
	var browserWS string
	select {
	case browserWS = <-wsURL:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not start its DevTools endpoint")
	}
	page := pageTarget(t, browserWS, srv.URL)
	cdp, err := dialCDP(page)
	if err != nil {
		t.Fatal(err)
	}
	defer cdp.Close()

	type entry struct{ T, ID, D string }
	readLog := func() []entry {
		s, err := cdp.eval("JSON.stringify(window.log || [])")
		if err != nil {
			t.Fatal(err)
		}
		var out []entry
		_ = json.Unmarshal([]byte(s), &out)
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
	mu.Lock()
	defer mu.Unlock()
	if len(lastIDs) < 2 || lastIDs[0] != "" || lastIDs[len(lastIDs)-1] != firstID {
		t.Fatalf("Last-Event-ID headers %q, want the reconnect to send %q", lastIDs, firstID)
	}
}

// pageTarget finds the DevTools WebSocket of the page showing base.
func pageTarget(t *testing.T, browserWS, base string) string {
	t.Helper()
	host := strings.TrimPrefix(browserWS, "ws://")
	host = host[:strings.IndexByte(host, '/')]
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + host + "/json/list")
		if err == nil {
			var targets []struct {
				Type, URL            string
				WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
			for _, tg := range targets {
				if tg.Type == "page" && strings.HasPrefix(tg.URL, base) && tg.WebSocketDebuggerURL != "" {
					return tg.WebSocketDebuggerURL
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("page target not found")
	return ""
}
