package relay

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qryptchat/suparelay/internal/netpoll"
)

// Lean streams: detached streams without a goroutine of their own once they are live.
//
// A live stream's goroutine spends its life parked in select, waiting for the next record, and its 4 KiB stack was
// the largest single cost of an open browser tab (BENCHMARKS.md, memory per stream). A lean stream instead is
// kicked: whoever queues a record for it (or closes it, or finds its heartbeat due, or sees the client gone) marks
// it scheduled and puts it on the hub's run queue, and one of a few writer goroutines drains its queue into one
// chunk and writes it. Writes to a healthy client never block (the socket's send buffer takes them); a write that
// does not finish within leanWriteSlice hands the stream to a goroutine of its own for the rest of its life — the
// ordinary loop, with the unwritten bytes first — so that a slow client never holds a writer.

// leanWriteSlice bounds how long a writer goroutine waits on one stream's socket.
const leanWriteSlice = 20 * time.Millisecond

// leanStream is the state of one lean stream. Only the writer that holds it (scheduled) touches the fields below
// the atomics; the atomics are set by anyone.
type leanStream struct {
	h      *Hub
	st     streamStart
	conn   net.Conn
	cw     *chunkWriter
	ctx    context.Context
	cancel context.CancelFunc
	watch  *netpoll.Watch

	scheduled atomic.Bool // on the run queue or being served; only its holder clears it
	hbDue     atomic.Bool
	ended     atomic.Bool // the finish has started: kicks are ignored

	skip      Position
	lastWrite time.Time
	hb        *time.Timer
	exp       *time.Timer
}

// leanPool is the hub's run queue of kicked lean streams and its writer goroutines.
type leanPool struct {
	mu    sync.Mutex
	queue []*leanStream
	wake  chan struct{}
}

func newLeanPool() *leanPool {
	return &leanPool{wake: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
}

// start runs the writers until ctx ends (the hub's stop).
func (p *leanPool) start(ctx context.Context, h *Hub) {
	for range cap(p.wake) {
		go func() {
			for {
				if ls := p.pop(); ls != nil {
					h.serveLean(ls)
					continue
				}
				select {
				case <-ctx.Done():
					return
				case <-p.wake:
				}
			}
		}()
	}
}

func (p *leanPool) push(ls *leanStream) {
	p.mu.Lock()
	p.queue = append(p.queue, ls)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default: // every writer is already awake
	}
}

func (p *leanPool) pop() *leanStream {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return nil
	}
	ls := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	if len(p.queue) == 0 {
		p.queue = p.queue[:0:0] // let a burst's backing array go
	}
	return ls
}

// kick schedules ls unless it already is (or is ending). It never blocks: the hub calls it under its lock.
func (ls *leanStream) kick() {
	if ls.ended.Load() {
		return
	}
	if ls.scheduled.CompareAndSwap(false, true) {
		ls.h.lean.push(ls)
	}
}

// goLean turns a detached stream that has written CONNECTED and its replay into a lean one; the calling
// goroutine may then end. published is where the close watcher's callback finds it (a hang-up cancels ctx and
// kicks the stream); not context.AfterFunc, which costs ~0.7 KiB per stream.
func (h *Hub) goLean(conn net.Conn, cw *chunkWriter, ctx context.Context, cancel context.CancelFunc,
	watch *netpoll.Watch, st streamStart, skip Position, published *atomic.Pointer[leanStream]) {
	ls := &leanStream{h: h, st: st, conn: conn, cw: cw, ctx: ctx, cancel: cancel, watch: watch, skip: skip,
		lastWrite: time.Now()}
	ls.hb = time.AfterFunc(h.cfg.Heartbeat, func() { ls.hbDue.Store(true); ls.kick() })
	if !st.expires.IsZero() {
		ls.exp = time.AfterFunc(time.Until(st.expires), func() { cancel(); ls.kick() })
	}
	published.Store(ls)
	h.mu.Lock()
	st.s.lean = ls
	h.mu.Unlock()
	ls.kick() // records queued while it was becoming lean, or a hang-up that came before published was set
}

// serveLean writes what is due on ls — queued records, a heartbeat, or the end — one batch per turn.
func (h *Hub) serveLean(ls *leanStream) {
	if ls.ended.Load() {
		return
	}
	if ls.ctx.Err() != nil {
		ls.finish(nil)
		return
	}
	bp := bufPool.Get().(*[]byte)
	b, open, frames := h.drainQueue((*bp)[:0], ls.st.s, ls.skip)
	if !open {
		h.m.delivered.Add(float64(frames))
		ls.finish(h.appendEnd(b, ls.st.s))
		return
	}
	if len(b) == 0 && ls.hbDue.Swap(false) {
		if idle := time.Since(ls.lastWrite); idle < h.cfg.Heartbeat {
			ls.hb.Reset(h.cfg.Heartbeat - idle)
		} else {
			b = appendHeartbeat(b, h.cfg.Now())
		}
	}
	h.m.delivered.Add(float64(frames))
	if len(b) > 0 {
		rest, err := ls.cw.writeWithin(b, leanWriteSlice)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			bufPool.Put(bp)
			ls.goSlow(rest)
			return // the slow goroutine owns the stream now; scheduled stays set, so kicks are ignored
		case err != nil:
			bufPool.Put(bp)
			ls.finish(nil)
			return
		}
		ls.lastWrite = time.Now()
		ls.hb.Reset(h.cfg.Heartbeat)
	}
	if cap(b) <= 256<<10 {
		*bp = b[:0]
		bufPool.Put(bp)
	}
	ls.scheduled.Store(false)
	// A kick that came while this ran saw scheduled set and left the work to us: look again.
	if len(ls.st.s.ch) == 0 && !ls.hbDue.Load() && ls.ctx.Err() == nil && !ls.st.s.ended.Load() {
		return
	}
	if ls.scheduled.CompareAndSwap(false, true) {
		h.lean.push(ls) // more to do: to the back of the queue, so that one busy stream cannot starve the rest
	}
	// else it was kicked again meanwhile: it is on the queue
}

// drainQueue appends the frames of the records waiting on s (at most 64 records or 32 KiB), skipping those the
// replay already wrote; open is false when the hub has closed the queue.
func (h *Hub) drainQueue(b []byte, s *stream, skip Position) (out []byte, open bool, frames int) {
	now := h.cfg.Now()
	for n := 0; n < 64 && len(b) < 32<<10; n++ {
		select {
		case rec, ok := <-s.ch:
			if !ok {
				return b, false, frames
			}
			b, frames = appendLive(b, rec, skip, now, frames)
		default:
			return b, true, frames
		}
	}
	return b, true, frames
}

// appendLive appends rec's frame unless the replay already wrote it (a record at or before skip), and counts it.
func appendLive(b []byte, rec *record, skip Position, now time.Time, frames int) ([]byte, int) {
	if rec.local || rec.pos.Epoch != skip.Epoch || rec.pos.Offset > skip.Offset {
		return appendFrame(b, rec, now), frames + 1
	}
	return b, frames
}

// appendEnd appends what the last write of a stream the hub closed carries: a retry hint (jittered, so that a
// node's clients do not all come back at once) when it was closed for a shutdown or a resync.
func (h *Hub) appendEnd(b []byte, s *stream) []byte {
	h.mu.Lock()
	why := s.reason
	h.mu.Unlock()
	if why == closeShutdown || why == closeResync {
		b = appendRetry(b, h.cfg.Retry+time.Duration(rand.Int64N(int64(2*h.cfg.Retry))))
	}
	return b
}

// goSlow gives the stream a goroutine of its own (the ordinary loop) after a write that did not finish in time;
// rest is what that write left unwritten.
func (ls *leanStream) goSlow(rest []byte) {
	ls.stopTimers()
	ls.h.m.leanSlow.Inc()
	go func() {
		if ls.cw.writeRaw(rest) != nil {
			ls.finishNow(nil)
			return
		}
		ls.h.loop(ls.ctx, ls.cw, ls.st.s, ls.skip, ls.st.expires)
		ls.finishNow(nil)
	}()
}

func (ls *leanStream) stopTimers() {
	ls.hb.Stop()
	if ls.exp != nil {
		ls.exp.Stop()
	}
}

// finish ends the stream: tail (a retry hint) and the end of the chunked body, then the same clean-up as a
// detached stream's goroutine. On a goroutine of its own: releasing the stream's lease is a broker call.
func (ls *leanStream) finish(tail []byte) {
	if ls.ended.Swap(true) {
		return
	}
	ls.stopTimers()
	go ls.cleanup(tail)
}

// finishNow is finish on the calling goroutine (the slow path's own).
func (ls *leanStream) finishNow(tail []byte) {
	if ls.ended.Swap(true) {
		return
	}
	ls.cleanup(tail)
}

func (ls *leanStream) cleanup(tail []byte) {
	if len(tail) > 0 {
		_ = ls.cw.write(tail)
	}
	ls.cw.finish()
	ls.h.unregister(ls.st.s)
	ls.cancel()
	if ls.watch != nil {
		ls.watch.Stop() // before Close: the descriptor number may be reused at once
	}
	_ = ls.conn.Close()
}
