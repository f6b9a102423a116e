// Package netpoll tells when a connection that nobody is reading has something to read or was closed by its
// peer, with one goroutine for all the connections it watches. It exists for memory: a goroutine parked in
// conn.Read costs 2–8 KiB of stack per connection, and the server holds tens of thousands of connections that are
// idle by design (detached SSE streams, whose clients send nothing; keep-alive connections between requests).
//
// It uses an epoll instance of its own beside Go's netpoller (an fd may sit in several). Linux only: New returns
// ErrUnsupported elsewhere, and Watch refuses connections that have no file descriptor (TLS, pipes); callers keep
// their goroutine-per-connection fallback for both.
package netpoll

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// ErrUnsupported: no epoll on this platform, or the connection has no file descriptor to watch.
var ErrUnsupported = errors.New("netpoll: not supported")

// ErrClosed: the Watcher was closed.
var ErrClosed = errors.New("netpoll: watcher closed")

// Watcher watches connections; see the package comment. Its zero value is not usable: use New.
type Watcher struct {
	poller  poller
	mu      sync.Mutex
	watches map[uint64]*Watch // by id; an event whose id is not here is stale and ignored
	nextID  uint64
	closed  bool
	done    chan struct{}
	fired   atomic.Uint64
}

// Watch is one connection being watched. Its callback runs at most once.
type Watch struct {
	w  *Watcher
	id uint64
	fd int
	fn func()
}

// New starts a Watcher with its one goroutine.
func New() (*Watcher, error) {
	p, err := newPoller()
	if err != nil {
		return nil, err
	}
	w := &Watcher{poller: p, watches: make(map[uint64]*Watch), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

// Watch calls fn once, on the Watcher's goroutine, when conn becomes readable (data, end of file, reset or
// error). fn must not block: it may cancel a context or queue the connection for someone else. The caller must
// Stop the watch before closing conn, so that a descriptor number reused by a later connection is never watched
// under the old callback.
func (w *Watcher) Watch(conn net.Conn, fn func()) (*Watch, error) {
	fd, err := connFD(conn)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ErrClosed
	}
	w.nextID++
	x := &Watch{w: w, id: w.nextID, fd: fd, fn: fn}
	if err := w.poller.add(fd, x.id); err != nil {
		return nil, err
	}
	w.watches[x.id] = x
	return x, nil
}

// Stop ends the watch. It reports true if fn has not run and never will; false if it has run or is running.
// Either way the descriptor is no longer watched when Stop returns.
func (x *Watch) Stop() bool {
	w := x.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.watches[x.id]; !ok {
		return false
	}
	delete(w.watches, x.id)
	_ = w.poller.del(x.fd)
	return true
}

// Watching is how many connections are watched now.
func (w *Watcher) Watching() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.watches)
}

// Fired is how many callbacks have run since New.
func (w *Watcher) Fired() uint64 { return w.fired.Load() }

// Close stops the goroutine. Callbacks that have not run never will; the connections are the callers' to close.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	for id, x := range w.watches {
		_ = w.poller.del(x.fd)
		delete(w.watches, id)
	}
	w.mu.Unlock()
	w.poller.wake()
	<-w.done
	return w.poller.close()
}

// loop waits for events and runs their callbacks; it ends when Close wakes it.
func (w *Watcher) loop() {
	defer close(w.done)
	ids := make([]uint64, 0, 128)
	for {
		var err error
		ids, err = w.poller.wait(ids[:0])
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return
		}
		fns := make([]func(), 0, len(ids))
		for _, id := range ids {
			x, ok := w.watches[id]
			if !ok {
				continue // stopped after the kernel queued the event
			}
			delete(w.watches, id)
			_ = w.poller.del(x.fd)
			fns = append(fns, x.fn)
		}
		w.mu.Unlock()
		for _, fn := range fns {
			w.fired.Add(1)
			fn()
		}
		if err != nil {
			// epoll_wait fails only on a broken instance (EBADF, EINVAL); nothing can be watched any more.
			w.mu.Lock()
			w.closed = true
			w.mu.Unlock()
			return
		}
	}
}

// connFD is the descriptor under conn, for connections that have one (TCP, Unix sockets).
func connFD(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	return fd, nil
}
