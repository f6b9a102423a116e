package idlepark

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// FuzzParity: whatever status, header and body a handler writes, the Parker's answer is net/http's (framing and
// Date aside), and a connection net/http keeps open the Parker keeps open and serves correctly.
func FuzzParity(f *testing.F) {
	f.Add(200, "Content-Type", "application/json", []byte(`{"a":1}`), false)
	f.Add(404, "X-Odd", "a\r\nb", []byte("<html>"), false)
	f.Add(204, "Content-Length", "0", []byte{}, false)
	f.Add(304, "ETag", `"x"`, []byte("body"), true)
	f.Add(599, "Bad Name", "v", []byte{0, 1, 2}, false)
	f.Add(200, "Content-Length", "3", []byte("abc"), true)
	f.Add(200, "Connection", "keep-alive, close", []byte("x"), false)
	var cases sync.Map
	var next atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := cases.Load(r.Header.Get("X-Case"))
		if !ok {
			w.Write([]byte("second"))
			return
		}
		c.(http.HandlerFunc)(w, r)
	})
	plain := startServer(f, h, false, Config{})
	parked := startServer(f, h, true, Config{})
	f.Fuzz(func(t *testing.T, status int, key, val string, body []byte, flush bool) {
		if status < 200 || status > 999 || len(body) > 3*DefaultMaxBuffer {
			return // informational and invalid codes are net/http's own (WriteHeader panics on the latter)
		}
		id := strconv.FormatInt(next.Add(1), 10)
		cases.Store(id, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header()[key] = []string{val}
			w.WriteHeader(status)
			w.Write(body[:len(body)/2])
			if flush {
				w.(http.Flusher).Flush()
			}
			w.Write(body[len(body)/2:])
		}))
		defer cases.Delete(id)
		req := fmt.Sprintf("GET /f HTTP/1.1\r\nHost: t\r\nX-Case: %s\r\n\r\n", id)
		var first, second [2]answer
		for j, ts := range []*testServer{plain, parked} {
			rc := dialRaw(t, ts.addr)
			first[j] = rc.do(req, "GET")
			second[j] = rc.do("GET /n HTTP/1.1\r\nHost: t\r\n\r\n", "GET")
			rc.c.Close()
		}
		if a, b := comparable(first[0]), comparable(first[1]); a != b {
			t.Fatalf("answer differs:\nnet/http: %s\nparked:   %s", a, b)
		}
		if second[0].err == nil && second[1].err != nil || second[1].err == nil && second[1].body != "second" {
			t.Fatalf("follow-up: net/http %v, parked %+v", second[0].err, second[1])
		}
	})
}
