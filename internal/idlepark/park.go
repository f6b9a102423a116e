// Package idlepark holds HTTP/1.1 keep-alive connections between requests without a goroutine or buffers each.
//
// net/http keeps a goroutine (8 KiB of stack that the GC never shrinks while it is parked), a 4 KiB read buffer,
// a 4 KiB write buffer and ~3 KiB of connection state for every idle keep-alive connection: ~20 KiB per browser
// tab beside its SSE stream (BENCHMARKS.md, memory per stream). A Parker instead answers each eligible request
// from a buffer, hijacks the connection, writes the response itself, and parks the bare connection in an epoll
// watcher (internal/netpoll). When the client sends its next request the connection is handed back to the
// http.Server through the Parker's listener, as if newly accepted, and served with fresh state.
//
// Anything unusual — a response too large to buffer, a flush, a hijack, HEAD, Expect, Connection: close, an
// unread body too large to drain, trailers — is served by net/http exactly as without the Parker, and that
// connection simply stays with net/http until its next request.
package idlepark

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qryptchat/suparelay/internal/netpoll"
)

// Defaults for Config's zero fields.
const (
	DefaultIdleTimeout  = 120 * time.Second
	DefaultMaxBuffer    = 32 << 10
	DefaultMaxDrain     = 256 << 10
	DefaultWriteTimeout = 30 * time.Second
)

// Config configures a Parker.
type Config struct {
	Watcher      *netpoll.Watcher // required; the caller closes it after the Parker
	IdleTimeout  time.Duration    // a parked connection is closed after this long (the server's IdleTimeout)
	MaxBuffer    int              // responses up to this many body bytes are buffered and the connection parked
	MaxDrain     int64            // unread request body bytes read and dropped so the connection can be parked
	WriteTimeout time.Duration    // deadline for writing a buffered response
	Logger       *slog.Logger
}

// Stats are the Parker's counters.
type Stats struct {
	Parked    int    // connections parked now
	Parks     uint64 // responses written by the Parker, each followed by a park or a hand-back
	Wakes     uint64 // parked connections handed back with a new request (or the client's close)
	Fallbacks uint64 // eligible requests served by net/http after all (see the package comment)
	Expired   uint64 // parked connections closed after IdleTimeout
}

// Parker is a net.Listener for http.Server.Serve and the Handler that parks its connections.
type Parker struct {
	cfg     Config
	inner   net.Listener
	mu      sync.Mutex
	parked  map[*parkedConn]struct{}
	woken   []net.Conn // handed back, waiting for Accept
	closed  bool
	signal  chan struct{} // woken has grown
	done    chan struct{}
	accepts chan acceptResult

	parks, wakes, fallbacks, expired atomic.Uint64
}

type parkedConn struct {
	conn  net.Conn
	watch *netpoll.Watch
	since time.Time
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// New wraps inner. Serve the http.Server on the Parker and wrap its handler with Handler.
func New(inner net.Listener, cfg Config) (*Parker, error) {
	if cfg.Watcher == nil {
		return nil, errors.New("idlepark: Config.Watcher is required")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxBuffer <= 0 {
		cfg.MaxBuffer = DefaultMaxBuffer
	}
	if cfg.MaxDrain <= 0 {
		cfg.MaxDrain = DefaultMaxDrain
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Parker{cfg: cfg, inner: inner, parked: make(map[*parkedConn]struct{}),
		signal: make(chan struct{}, 1), done: make(chan struct{}), accepts: make(chan acceptResult)}
	go p.acceptLoop()
	go p.sweep()
	return p, nil
}

// Accept returns the next connection: a handed-back parked one first, else a new one from the inner listener.
func (p *Parker) Accept() (net.Conn, error) {
	for {
		p.mu.Lock()
		if len(p.woken) > 0 {
			c := p.woken[0]
			p.woken[0] = nil
			p.woken = p.woken[1:]
			p.mu.Unlock()
			return c, nil
		}
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		select {
		case r := <-p.accepts:
			return r.conn, r.err
		case <-p.signal:
		case <-p.done:
		}
	}
}

// acceptLoop feeds Accept from the inner listener until it is closed. Errors are passed on one by one, so that
// http.Server's back-off on temporary errors (EMFILE) works as with the bare listener.
func (p *Parker) acceptLoop() {
	for {
		c, err := p.inner.Accept()
		select {
		case p.accepts <- acceptResult{c, err}:
		case <-p.done:
			if c != nil {
				_ = c.Close()
			}
			return
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Addr is the inner listener's.
func (p *Parker) Addr() net.Addr { return p.inner.Addr() }

// Close stops accepting and closes every parked and handed-back connection (they are idle: net/http's Shutdown
// closes its own idle connections the same way). Requests in flight are then served by net/http, which closes
// their connections while shutting down. Close twice is fine.
func (p *Parker) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	parked := p.parked
	woken := p.woken
	p.parked, p.woken = map[*parkedConn]struct{}{}, nil
	close(p.done)
	p.mu.Unlock()
	for pc := range parked {
		pc.watch.Stop()
		_ = pc.conn.Close()
	}
	for _, c := range woken {
		_ = c.Close()
	}
	return p.inner.Close()
}

// Stats reports the counters.
func (p *Parker) Stats() Stats {
	p.mu.Lock()
	n := len(p.parked)
	p.mu.Unlock()
	return Stats{Parked: n, Parks: p.parks.Load(), Wakes: p.wakes.Load(), Fallbacks: p.fallbacks.Load(),
		Expired: p.expired.Load()}
}

// isClosed: after Close nothing is parked any more.
func (p *Parker) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// release takes a connection whose response the Parker has written: with bytes of a next request already read
// (pipelined), it is handed back at once; otherwise it is parked until the client sends something.
func (p *Parker) release(conn net.Conn, buffered []byte) {
	if pc, ok := conn.(*prefixConn); ok { // bytes net/http had not read yet follow the ones it had
		buffered = append(buffered, pc.rest()...)
		conn = pc.Conn
	}
	if len(buffered) > 0 {
		p.handBack(&prefixConn{Conn: conn, pre: buffered})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = conn.Close()
		return
	}
	pc := &parkedConn{conn: conn, since: time.Now()}
	w, err := p.cfg.Watcher.Watch(conn, func() { p.wake(pc) })
	if err != nil { // no descriptor to watch (or the watcher is gone): let net/http hold it as before
		p.woken = append(p.woken, conn)
		p.notify()
		return
	}
	pc.watch = w
	p.parked[pc] = struct{}{}
}

// wake runs on the watcher's goroutine: the parked connection has a request (or was closed by the client).
func (p *Parker) wake(pc *parkedConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.parked[pc]; !ok {
		return // expired or closed meanwhile
	}
	delete(p.parked, pc)
	p.wakes.Add(1)
	p.woken = append(p.woken, pc.conn)
	p.notify()
}

func (p *Parker) handBack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return
	}
	p.woken = append(p.woken, c)
	p.notify()
}

// notify wakes Accept; the caller holds p.mu.
func (p *Parker) notify() {
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// sweep closes connections parked longer than IdleTimeout, as net/http's IdleTimeout would.
func (p *Parker) sweep() {
	every := min(max(p.cfg.IdleTimeout/10, 100*time.Millisecond), 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			var stale []*parkedConn
			p.mu.Lock()
			for pc := range p.parked {
				if now.Sub(pc.since) >= p.cfg.IdleTimeout && pc.watch.Stop() {
					delete(p.parked, pc)
					stale = append(stale, pc)
				}
			}
			p.mu.Unlock()
			for _, pc := range stale {
				p.expired.Add(1)
				_ = pc.conn.Close()
			}
		}
	}
}

// prefixConn is a connection whose first bytes were already read from the socket (a pipelined request).
type prefixConn struct {
	net.Conn
	mu  sync.Mutex
	pre []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(b)
}

// rest is what has not been read of the prefix.
func (c *prefixConn) rest() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.pre
	c.pre = nil
	return r
}
