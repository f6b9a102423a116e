package netpoll

import (
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// pair is a connected loopback TCP pair: the server's end (watched) and the client's.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func newWatcher(t *testing.T) *Watcher {
	t.Helper()
	w, err := New()
	if err != nil {
		if runtime.GOOS != "linux" {
			t.Skip("netpoll is Linux only")
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func waitFired(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: callback did not run", what)
	}
}

func notFired(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: callback ran", what)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestFiresOnPeerClose, on data and on reset: each wakes the watch once; the data stays unread for the owner.
func TestFiresOnPeerEvents(t *testing.T) {
	w := newWatcher(t)
	for _, tc := range []struct {
		name string
		do   func(net.Conn)
	}{
		{"close", func(c net.Conn) { c.Close() }},
		{"half close", func(c net.Conn) { c.(*net.TCPConn).CloseWrite() }},
		{"data", func(c net.Conn) { c.Write([]byte("GET / HTTP/1.1\r\n")) }},
		{"reset", func(c net.Conn) { c.(*net.TCPConn).SetLinger(0); c.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, cli := pair(t)
			fired := make(chan struct{}, 2)
			x, err := w.Watch(srv, func() { fired <- struct{}{} })
			if err != nil {
				t.Fatal(err)
			}
			notFired(t, fired, "idle")
			tc.do(cli)
			waitFired(t, fired, tc.name)
			notFired(t, fired, "once only")
			if x.Stop() {
				t.Error("Stop after the callback ran reported true")
			}
			if tc.name == "data" {
				b := make([]byte, 64)
				srv.SetReadDeadline(time.Now().Add(time.Second))
				n, err := srv.Read(b)
				if err != nil || string(b[:n]) != "GET / HTTP/1.1\r\n" {
					t.Errorf("read after the watch: %q, %v", b[:n], err)
				}
			}
		})
	}
}

// TestStopBeforeEvent: a stopped watch never runs, and its connection can then be read and closed normally.
func TestStopBeforeEvent(t *testing.T) {
	w := newWatcher(t)
	srv, cli := pair(t)
	fired := make(chan struct{}, 1)
	x, err := w.Watch(srv, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	if !x.Stop() {
		t.Fatal("first Stop reported false")
	}
	if x.Stop() {
		t.Fatal("second Stop reported true")
	}
	cli.Write([]byte("x"))
	notFired(t, fired, "stopped")
	if w.Watching() != 0 {
		t.Errorf("Watching = %d, want 0", w.Watching())
	}
}

// TestRewatch: a connection woken once can be watched again (the keep-alive park does this per request).
func TestRewatch(t *testing.T) {
	w := newWatcher(t)
	srv, cli := pair(t)
	buf := make([]byte, 8)
	for i := range 5 {
		fired := make(chan struct{}, 1)
		if _, err := w.Watch(srv, func() { fired <- struct{}{} }); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		cli.Write([]byte("a"))
		waitFired(t, fired, "rewatch")
		if _, err := srv.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.Fired(); got != 5 {
		t.Errorf("Fired = %d, want 5", got)
	}
}

// TestReusedDescriptor: a closed connection's descriptor, reused by a new one, wakes only the new watch.
func TestReusedDescriptor(t *testing.T) {
	w := newWatcher(t)
	old, _ := pair(t)
	oldFired := make(chan struct{}, 1)
	x, err := w.Watch(old, func() { oldFired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	x.Stop()
	old.Close()
	srv, cli := pair(t) // likely the same descriptor number
	newFired := make(chan struct{}, 1)
	if _, err := w.Watch(srv, func() { newFired <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	waitFired(t, newFired, "new")
	notFired(t, oldFired, "old")
}

// TestManyConcurrent: many connections, watched, stopped and woken from many goroutines (run with -race).
func TestManyConcurrent(t *testing.T) {
	w := newWatcher(t)
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	woke := 0
	for i := range n {
		srv, cli := pair(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			x, err := w.Watch(srv, func() {
				mu.Lock()
				woke++
				mu.Unlock()
				close(done)
			})
			if err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				if !x.Stop() {
					t.Error("Stop of an idle watch reported false")
				}
				return
			}
			cli.Close()
			<-done
		}()
	}
	wg.Wait()
	if woke != n/2 || w.Watching() != 0 {
		t.Errorf("woke %d (want %d), still watching %d", woke, n/2, w.Watching())
	}
}

// TestClose: after Close no callback runs and Watch refuses; Close twice is fine.
func TestClose(t *testing.T) {
	w := newWatcher(t)
	srv, cli := pair(t)
	fired := make(chan struct{}, 1)
	if _, err := w.Watch(srv, func() { fired <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	notFired(t, fired, "after Close")
	if _, err := w.Watch(srv, func() {}); err != ErrClosed {
		t.Errorf("Watch after Close: %v, want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestUnsupportedConn: a connection without a descriptor is refused, so the caller falls back.
func TestUnsupportedConn(t *testing.T) {
	w := newWatcher(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := w.Watch(a, func() {}); err != ErrUnsupported {
		t.Errorf("net.Pipe: %v, want ErrUnsupported", err)
	}
}
