package api

import (
	"context"
	"sync"
	"time"
)

// maxBackground is how many background tasks may run at once.
const maxBackground = 256

// backgroundGrace is how long Close still waits, after canceling the tasks, for them to return: they all do I/O
// under the context they were given, so a canceled task ends at once; a task that ignores it is not waited for.
const backgroundGrace = time.Second

// background is the fire-and-forget work requests leave behind (activity stamps, webhook lookups, alert e-mails).
// It is bounded — past maxBackground running tasks, more are skipped and logged rather than piling up goroutines
// under load — and tied to the server's lifetime: every task runs under a context the server owns, and
// [Server.Close] refuses new tasks, waits for the running ones and cancels what is left when its own context ends,
// so that no task outlives the connections (Supabase, Redis) that shutdown closes next.
type background struct {
	ctx    context.Context // base of every task; canceled by Close
	cancel context.CancelFunc
	slots  chan struct{}

	mu     sync.Mutex
	closed bool
	tasks  sync.WaitGroup
}

func newBackground() *background {
	b := &background{slots: make(chan struct{}, maxBackground)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b
}

// goBackground runs f in the background under the server's task context unless the server is closing or
// maxBackground tasks are already running; it reports whether f was started.
func (s *Server) goBackground(what string, f func(ctx context.Context)) bool {
	b := s.background
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		s.log.Warn("background work skipped: the server is shutting down", "task", what)
		return false
	}
	select {
	case b.slots <- struct{}{}:
	default:
		b.mu.Unlock()
		s.log.Warn("background work skipped: too many tasks running", "task", what)
		return false
	}
	b.tasks.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.tasks.Done()
		defer func() { <-b.slots }()
		f(b.ctx)
	}()
	return true
}

// Close ends the server's background work: no task starts after it is called; tasks already running may finish
// until ctx ends, when they are canceled (and given backgroundGrace to return). It returns ctx's error when it
// had to cancel. Call it after the HTTP server has drained, so that no handler starts a task meanwhile that
// would be refused. It is safe to call more than once.
func (s *Server) Close(ctx context.Context) error {
	b := s.background
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.tasks.Wait(); close(done) }()
	select {
	case <-done:
		b.cancel()
		return nil
	case <-ctx.Done():
	}
	b.cancel()
	select {
	case <-done:
	case <-time.After(backgroundGrace):
		s.log.Warn("background tasks still running after shutdown", "tasks", len(b.slots))
	}
	return ctx.Err()
}
