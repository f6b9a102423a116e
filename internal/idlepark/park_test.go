package idlepark

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/netpoll"
)

// testServer is an http.Server on loopback, with a Parker in front of h or (parked=false) without one.
type testServer struct {
	addr   string
	parker *Parker
}

func startServer(t testing.TB, h http.Handler, parked bool, cfg Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: ln.Addr().String()}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second,
		ErrorLog: nil}
	var serveLn net.Listener = ln
	if parked {
		w, err := netpoll.New()
		if err != nil {
			t.Skip(err)
		}
		cfg.Watcher = w
		if ts.parker, err = New(ln, cfg); err != nil {
			t.Fatal(err)
		}
		srv.Handler = ts.parker.Handler(h)
		serveLn = ts.parker
		t.Cleanup(func() { _ = w.Close() })
	}
	go func() { _ = srv.Serve(serveLn) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ts
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// rawConn sends requests on one connection and reads the responses, as a browser's keep-alive connection does.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c: c, br: bufio.NewReader(c)}
}

type answer struct {
	status int
	header http.Header
	body   string
	err    error
}

func (rc *rawConn) do(req string, method string) answer {
	_ = rc.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(rc.c, req); err != nil {
		return answer{err: err}
	}
	return rc.read(method)
}

func (rc *rawConn) read(method string) answer {
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		return answer{err: err}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

func get(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: t\r\nUser-Agent: test\r\n\r\n"
}

// TestKeepAliveIsParked: every request on one keep-alive connection is answered, and between requests the
// connection is parked, not held by net/http.
func TestKeepAliveIsParked(t *testing.T) {
	var mu sync.Mutex
	var remotes []string
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remotes = append(remotes, r.RemoteAddr)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}), true, Config{})
	rc := dialRaw(t, ts.addr)
	for i := range 20 {
		a := rc.do(get(fmt.Sprintf("/r%d", i)), "GET")
		if a.err != nil || a.status != 200 || a.body != fmt.Sprintf(`{"path":"/r%d"}`, i) {
			t.Fatalf("request %d: %+v", i, a)
		}
		if a.header.Get("Content-Length") != fmt.Sprint(len(a.body)) || a.header.Get("Date") == "" {
			t.Fatalf("request %d: headers %v", i, a.header)
		}
		waitFor(t, "parked", func() bool { return ts.parker.Stats().Parked == 1 })
	}
	st := ts.parker.Stats()
	if st.Parks != 20 || st.Wakes != 19 || st.Fallbacks != 0 {
		t.Errorf("stats %+v, want 20 parks, 19 wakes, no fallback", st)
	}
	if n := len(slices.Compact(remotes)); n != 1 {
		t.Errorf("requests came over %d connections, want 1", n)
	}
	rc.c.Close()
	waitFor(t, "the client's close noticed", func() bool { return ts.parker.Stats().Parked == 0 })
}

// parityCases are handlers whose answers must be the same with and without the Parker (framing aside: the
// Parker always sends Content-Length, net/http chunks bodies over 2 KiB), and whose connections must stay open
// or close alike.
var parityCases = map[string]http.HandlerFunc{
	"text": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") },
	"sniffed html": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html><body>hi</body></html>")
	},
	"no content type": func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		io.WriteString(w, "<html>")
	},
	"json 201": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Set-Cookie", "a=1; Path=/")
		w.Header().Add("Set-Cookie", "b=2; Path=/")
		w.WriteHeader(201)
		io.WriteString(w, `{"ok":true}`)
	},
	"empty":      func(w http.ResponseWriter, r *http.Request) {},
	"204":        func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204); w.Write([]byte("x")) },
	"304":        func(w http.ResponseWriter, r *http.Request) { w.Header().Set("ETag", `"1"`); w.WriteHeader(304) },
	"error":      func(w http.ResponseWriter, r *http.Request) { http.Error(w, `{"error":"no"}`, 404) },
	"status 599": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(599) },
	"header set after WriteHeader": func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		w.Header().Set("X-Late", "ignored")
		io.WriteString(w, "a")
	},
	"newline in header value": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Odd", "a\r\nInjected: yes")
		io.WriteString(w, "a")
	},
	"bad header name": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Bad Name", "v")
		io.WriteString(w, "a")
	},
	"content length right": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "abc")
	},
	"content length short": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "abc")
	},
	"connection close": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	},
	"trailer": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "1")
	},
	"large": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("0123456789", 10_000)) // beyond MaxBuffer: net/http streams it
	},
	"just under the buffer": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("z", DefaultMaxBuffer))
	},
	"flush": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part1,")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part2")
	},
	"reads body": func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d", len(b))
	},
	"reads part of body and closes": func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 3)
		n, _ := io.ReadFull(r.Body, b)
		r.Body.Close()
		fmt.Fprintf(w, "%q", b[:n])
	},
	"ignores body": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ignored") },
	"max bytes": func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 10))
		if err != nil {
			http.Error(w, "too large", 413)
			return
		}
		io.WriteString(w, "ok")
	},
}

func parityHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := parityCases[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			io.WriteString(w, "second") // the follow-up request that tells whether the connection stayed open
			return
		}
		h(w, r)
	})
}

func parityRequests(name string) []string {
	path := "/" + strings.ReplaceAll(name, " ", "%20")
	reqs := []string{get(path)}
	if strings.Contains(name, "body") || name == "max bytes" {
		small := "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world"
		big := "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Length: 400000\r\n\r\n" + strings.Repeat("b", 400000)
		chunked := "POST " + path + " HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
		reqs = []string{small, big, chunked}
	}
	reqs = append(reqs, "HEAD "+path+" HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET "+path+" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
	return reqs
}

// comparable drops what may differ: framing and the clock.
func comparable(a answer) string {
	if a.err != nil {
		return "error"
	}
	h := a.header.Clone()
	for _, k := range []string{"Date", "Content-Length", "Transfer-Encoding"} {
		h.Del(k)
	}
	var b bytes.Buffer
	h.Write(&b)
	return fmt.Sprintf("%d\n%s\n%q", a.status, b.String(), a.body)
}

// TestParity: each case answered the same with and without the Parker, and its connection open (or closed)
// alike afterwards.
func TestParity(t *testing.T) {
	plain := startServer(t, parityHandler(), false, Config{})
	parked := startServer(t, parityHandler(), true, Config{})
	for name := range parityCases {
		for i, req := range parityRequests(name) {
			method := strings.Fields(req)[0]
			t.Run(fmt.Sprintf("%s/%d", name, i), func(t *testing.T) {
				answers := [2]answer{}
				second := [2]answer{}
				for j, ts := range []*testServer{plain, parked} {
					rc := dialRaw(t, ts.addr)
					answers[j] = rc.do(req, method)
					second[j] = rc.do(get("/next"), "GET")
				}
				if a, b := comparable(answers[0]), comparable(answers[1]); a != b {
					t.Errorf("answer differs:\nnet/http: %s\nparked:   %s", a, b)
				}
				// A connection net/http keeps, the Parker keeps. The Parker may keep one that net/http closes (a body
				// a handler refused with http.MaxBytesReader, drained within MaxDrain: net/http's own signal for
				// it is unexported); then the next request on it must be answered correctly.
				if second[0].err == nil && second[1].err != nil || second[1].err == nil && second[1].body != "second" {
					t.Errorf("follow-up on the same connection: net/http %v, parked %+v", second[0].err, second[1])
				}
			})
		}
	}
	if st := parked.parker.Stats(); st.Parks == 0 || st.Fallbacks == 0 {
		t.Errorf("stats %+v: the cases should both park and fall back", st)
	}
}

// TestPipelined: two requests in one write are both answered, in order.
func TestPipelined(t *testing.T) {
	ts := startServer(t, parityHandler(), true, Config{})
	rc := dialRaw(t, ts.addr)
	rc.c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(rc.c, get("/text")+get("/json%20201")+get("/text"))
	for i, want := range []string{"hello", `{"ok":true}`, "hello"} {
		if a := rc.read("GET"); a.err != nil || a.body != want {
			t.Fatalf("response %d: %+v, want %q", i, a, want)
		}
	}
	waitFor(t, "parked", func() bool { return ts.parker.Stats().Parked == 1 })
}

// TestIdleTimeout: a parked connection is closed after IdleTimeout, as net/http closes its idle ones.
func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, parityHandler(), true, Config{IdleTimeout: 200 * time.Millisecond})
	rc := dialRaw(t, ts.addr)
	if a := rc.do(get("/text"), "GET"); a.err != nil {
		t.Fatal(a.err)
	}
	waitFor(t, "expired", func() bool { return ts.parker.Stats().Expired == 1 })
	rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := rc.br.ReadByte(); err != io.EOF {
		t.Errorf("read after the idle timeout: %v, want EOF", err)
	}
}

// TestCloseClosesParked: closing the Parker (http.Server.Shutdown closes its listener) closes parked
// connections; later requests on the server are served without parking.
func TestCloseClosesParked(t *testing.T) {
	ts := startServer(t, parityHandler(), true, Config{})
	rc := dialRaw(t, ts.addr)
	if a := rc.do(get("/text"), "GET"); a.err != nil {
		t.Fatal(a.err)
	}
	waitFor(t, "parked", func() bool { return ts.parker.Stats().Parked == 1 })
	ts.parker.Close()
	rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := rc.br.ReadByte(); err != io.EOF {
		t.Errorf("read after Close: %v, want EOF", err)
	}
	if ts.parker.Stats().Parked != 0 {
		t.Error("still parked after Close")
	}
}

// TestHijackPassesThrough: a handler that hijacks (as the relay's detached streams do) gets net/http's connection.
func TestHijackPassesThrough(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Before", "1") // set before the hijack: the hijacker writes its own head
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nraw ok")
		brw.Flush()
		c.Close()
	}), true, Config{})
	rc := dialRaw(t, ts.addr)
	if a := rc.do(get("/"), "GET"); a.err != nil || a.body != "raw ok" {
		t.Fatalf("%+v", a)
	}
}

// TestConcurrentClients: many keep-alive clients at once, each request answered with its own body (-race).
func TestConcurrentClients(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}), true, Config{})
	tr := &http.Transport{MaxIdleConnsPerHost: 50}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				want := fmt.Sprintf("client %d request %d %s", g, i, strings.Repeat("x", g*100))
				resp, err := client.Post("http://"+ts.addr+"/", "text/plain", strings.NewReader(want))
				if err != nil {
					t.Error(err)
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(got) != want {
					t.Errorf("got %q, want %q", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := ts.parker.Stats(); st.Parks != 1000 || st.Fallbacks != 0 {
		t.Errorf("stats %+v, want 1000 parks", st)
	}
}
