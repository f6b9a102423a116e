package chromium

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func launch(t *testing.T) *Browser {
	t.Helper()
	if Path() == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (make test installs Debian's chromium)")
		}
		t.Skip("chromium not installed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b, err := Launch(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// TestPageAndLoopbackCheck drives a page in an isolated context, and shows that the NetLog check catches a page
// that tries to reach a host that is not loopback (the host-resolver rule stops the lookup, the check sees it).
func TestPageAndLoopbackCheck(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<!doctype html><title>t</title><p id="x">hello</p>`)
	}))
	t.Cleanup(srv.Close)
	b := launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := b.NewContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, srv.URL+"/"); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := p.Eval(ctx, `document.querySelector('#x').textContent`, &text); err != nil || text != "hello" {
		t.Fatalf("eval = %q, %v", text, err)
	}
	if err := p.Eval(ctx, `console.log('from', 'page'); 1`, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Eval(ctx, `Promise.reject(new Error('boom'))`, nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("rejected promise: %v", err)
	}
	// WaitFor awaits a condition that is a promise: a promise of false is false, not a truthy object.
	if err := p.WaitFor(ctx, `Promise.resolve(document.querySelector('#x').textContent === 'bye')`, 300*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitFor(promise of false) = %v, want ErrTimeout", err)
	}
	if err := p.WaitFor(ctx, `new Promise(r => setTimeout(() => r(document.querySelector('#x').textContent === 'hello'), 50))`, 5*time.Second); err != nil {
		t.Fatalf("WaitFor(promise of true) = %v", err)
	}
	// The page reaches out: the lookup is refused by the resolver rule, and the NetLog shows the attempt.
	_ = p.Eval(ctx, `fetch('http://outside.example.com/x').then(()=>1, ()=>0)`, nil)
	out, err := b.CheckLoopback()
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 || !strings.Contains(strings.Join(out, " "), "outside.example.com") {
		t.Fatalf("non-loopback destinations = %v, want the fetch to outside.example.com", out)
	}
	for _, d := range out {
		if !strings.Contains(d, "outside.example.com") {
			t.Errorf("Chromium itself reached out: %s", d)
		}
	}
	if c := strings.Join(p.Console(), "\n"); !strings.Contains(c, "console.log: from page") {
		t.Errorf("console = %s", c)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	t.Parallel()
	for h, want := range map[string]bool{
		"127.0.0.1:80": true, "localhost": true, "[::1]:443": true, "::1": true, "a.localhost": true, "": true,
		"example.com": false, "10.0.0.1:80": false, "[2001:db8::1]:80": false, "accounts.google.com:443": false,
	} {
		if got := isLoopbackHost(h); got != want {
			t.Errorf("isLoopbackHost(%q) = %v, want %v", h, got, want)
		}
	}
}

// TestNonLoopback reads a small NetLog: URLs, looked-up names and TCP addresses off loopback count; a UDP socket
// that was only connected (a route query) does not, one that sent a datagram does.
func TestNonLoopback(t *testing.T) {
	t.Parallel()
	log := `{"constants":{"logEventTypes":{"UDP_LOCAL_ADDRESS":97,"TCP_ACCEPT":1,"UDP_BYTES_SENT":98,"UDP_CONNECT":96},"logSourceType":{"UDP_SOCKET":24,"UDP_CLIENT_SOCKET":49}},
"events": [
{"params":{"url":"http://127.0.0.1:5000/x"},"phase":1,"source":{"id":1,"type":1},"time":"1","type":2},
{"params":{"url":"https://accounts.example.com/ListAccounts"},"phase":1,"source":{"id":2,"type":1},"time":"1","type":2},
{"params":{"host":"tracker.example.net:443"},"phase":1,"source":{"id":3,"type":31},"time":"1","type":6},
{"params":{"address_list":["127.0.0.1:80","[2001:db8::5]:443"]},"phase":1,"source":{"id":4,"type":8},"time":"1","type":51},
{"params":{"address":"[2001:4860:4860::8888]:443"},"phase":1,"source":{"id":5,"type":24},"time":"1","type":96},
{"params":{"address":"[fd00::2]:34534"},"phase":0,"source":{"id":5,"type":24},"time":"1","type":97},
{"params":{"address":"198.51.100.7:53"},"phase":1,"source":{"id":6,"type":24},"time":"1","type":96},
{"params":{"byte_count":40},"phase":0,"source":{"id":6,"type":24},"time":"1","type":98},
{"params":{"url":"http://~notfound/"},"phase":1,"source":{"id":7,"type":1},"time":"1","type":2},
{"params":{"url":"https://cut.example.org/"},"phase":1,"sour`
	got, err := nonLoopback(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	want := "address_list [2001:db8::5]:443,host tracker.example.net:443,https://accounts.example.com,udp 198.51.100.7:53"
	if strings.Join(got, ",") != want {
		t.Fatalf("nonLoopback = %q, want %q", strings.Join(got, ","), want)
	}
}
