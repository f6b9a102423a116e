package middleware

import (
	"bufio"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestShallowConnStacks: the handler's answer, a hijack, ErrAbortHandler, another panic and runtime.Goexit all
// reach net/http as they would without the wrapper; the server survives each.
func TestShallowConnStacks(t *testing.T) {
	t.Parallel()
	logged := &syncWriter{w: &strings.Builder{}}
	log := slog.New(slog.NewTextHandler(logged, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Test", "1")
		fmt.Fprint(w, "hello")
	})
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		_ = rw.Flush()
	})
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	mux.HandleFunc("/goexit", func(w http.ResponseWriter, r *http.Request) { runtime.Goexit() })
	srv := httptest.NewUnstartedServer(ShallowConnStacks(log)(mux))
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()

	get := func(path string) (*http.Response, string, error) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			return nil, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res, string(b), err
	}
	if res, body, err := get("/ok"); err != nil || res.StatusCode != 200 || body != "hello" || res.Header.Get("X-Test") != "1" {
		t.Fatalf("/ok = %v %q %v", res, body, err)
	}
	if _, body, err := get("/hijack"); err != nil || body != "hi" {
		t.Fatalf("/hijack = %q %v", body, err)
	}
	for _, p := range []string{"/abort", "/panic", "/goexit"} {
		if _, _, err := get(p); err == nil {
			t.Errorf("%s: the response should be aborted (net/http closes the connection)", p)
		}
	}
	if res, body, err := get("/ok"); err != nil || body != "hello" {
		t.Fatalf("/ok after the panics = %v %q %v", res, body, err)
	}
	if s := logged.String(); !strings.Contains(s, "boom") || !strings.Contains(s, "shallow_test.go") {
		t.Errorf("the panic should be logged with the handler's stack, got %q", s)
	}

	// A keep-alive connection serves several requests in a row.
	c, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		fmt.Fprintf(c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "hello" {
			t.Fatalf("keep-alive request %d: %q", i, b)
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}
