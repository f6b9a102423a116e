package middleware

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BodyTimeoutConfig configures [BodyTimeout].
type BodyTimeoutConfig struct {
	// Timeout is both the allowance before MinRate applies and the longest pause between two reads that return
	// data. Required (> 0).
	Timeout time.Duration
	// MinRate is the average in bytes per second a body must keep up once Timeout has passed: after n bytes the
	// next ones are due by start + Timeout + n/MinRate. 0 = the whole body within Timeout.
	MinRate int64
	Logger  *slog.Logger // nil = slog.Default()
	// Registerer gets suparelay_http_body_timeouts_total (the metrics middleware inside records the handler's own
	// status for these requests, not the 408); nil = none.
	Registerer prometheus.Registerer
}

// bodyTimeoutKey is the context key of a request's *bodyState, read by AccessLog.
type bodyTimeoutKey struct{}

// BodyTimeout puts a read deadline on request bodies, so that a client trickling its body (Content-Length: 1000,
// then one byte a second) cannot hold a connection and its goroutine for as long as it likes.
//
// Why not http.Server.ReadTimeout: it is one fixed deadline for head and body together. net/http (Go 1.26, read in
// its source) clears the connection's read deadline when it starts its background read, right after the head for
// a request without a body and at the body's end otherwise, and again on Hijack, so it would not cut SSE streams;
// but one fixed deadline either cuts the uploads the front door streams to Storage (signed uploads of up to 2 GiB)
// or, set long enough for them, does nothing against a trickled 1 KiB API body. So the deadline is set here, per
// request, only when there is a body, and moved forward as the body arrives: the next bytes are due by
// start + Timeout + bytes/MinRate and never more than Timeout after the last data. It is cleared at the body's end
// (net/http does so too; doing it here does not depend on that), and a body left unread keeps it, which also
// bounds net/http's draining of that body after the handler.
//
// When the deadline passes while the handler reads, the read fails with a timeout (net/http also cancels the
// request's context) and, if the handler had not yet started its response, the client gets 408
// {"error":"Request body timed out"} with Connection: close in place of whatever the handler answers; AccessLog
// records that 408. Writers that cannot take a deadline (httptest recorders) leave the request untouched.
//
// Put it outermost (before anything that reads the body): every wrapper between it and net/http must support
// http.ResponseController (Unwrap), as this package's wrappers do.
func BodyTimeout(cfg BodyTimeoutConfig) func(http.Handler) http.Handler {
	if cfg.Timeout <= 0 || cfg.MinRate < 0 {
		panic("middleware: BodyTimeout needs a positive Timeout and a MinRate >= 0")
	}
	log := orDefault(cfg.Logger)
	timeouts := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "suparelay", Subsystem: "http",
		Name: "body_timeouts_total", Help: "Requests whose body did not arrive in time (REQUEST_BODY_TIMEOUT)."})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(timeouts); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if c, ok := are.ExistingCollector.(prometheus.Counter); ok {
					timeouts = c
				}
			}
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(w, r)
				return
			}
			ctl := http.NewResponseController(w)
			start := time.Now()
			if err := ctl.SetReadDeadline(start.Add(cfg.Timeout)); err != nil {
				next.ServeHTTP(w, r)
				return
			}
			st := &bodyState{}
			tw := &timeoutWriter{ResponseWriter: w, st: st}
			body := &deadlineBody{rc: r.Body, ctl: ctl, st: st, start: start, timeout: cfg.Timeout, rate: cfg.MinRate}
			r.Body = body
			next.ServeHTTP(tw, r.WithContext(context.WithValue(r.Context(), bodyTimeoutKey{}, st)))
			st.done.Store(true)
			if st.timedOut.Load() {
				timeouts.Inc()
				if !tw.wrote {
					tw.replace()
				}
				log.InfoContext(r.Context(), "request body too slow", "method", r.Method, "path", r.URL.Path,
					"bytes", body.bytes(), "after", time.Since(start).Round(time.Millisecond),
					"client", logClient(r))
			}
		})
	}
}

// bodyState is shared by a request's body, its writer and AccessLog. The body may be read on another goroutine
// than the handler's (a reverse proxy's transport), hence the atomics.
type bodyState struct {
	timedOut atomic.Bool // a read hit the deadline
	replaced atomic.Bool // the client got our 408
	answered atomic.Bool // the handler's own response went out (before any timeout): it stands
	done     atomic.Bool // the handler returned: no more deadline changes on a connection that may be reused
}

// bodyTimedOut reports whether the request's answer is (or will be, once the handler returns) BodyTimeout's 408.
func bodyTimedOut(ctx context.Context) bool {
	st, ok := ctx.Value(bodyTimeoutKey{}).(*bodyState)
	return ok && st.timedOut.Load() && !st.answered.Load()
}

// deadlineBody moves the connection's read deadline along as the body arrives.
type deadlineBody struct {
	rc      io.ReadCloser
	ctl     *http.ResponseController
	st      *bodyState
	start   time.Time
	timeout time.Duration
	rate    int64

	mu  sync.Mutex
	n   int64
	eof bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n += int64(n)
	if b.eof || b.st.done.Load() {
		return n, err
	}
	switch {
	case errors.Is(err, io.EOF):
		// The whole body is in: net/http's background read starts now and must never hit a deadline.
		b.eof = true
		_ = b.ctl.SetReadDeadline(time.Time{})
	case err != nil:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			b.st.timedOut.Store(true)
		}
	case n > 0:
		_ = b.ctl.SetReadDeadline(b.next(time.Now()))
	}
	return n, err
}

// next is when the following bytes are due: by the rate's schedule, and never more than timeout after now.
func (b *deadlineBody) next(now time.Time) time.Time {
	due := b.start.Add(b.timeout)
	if b.rate > 0 {
		due = due.Add(time.Duration(float64(b.n) / float64(b.rate) * float64(time.Second)))
	}
	if idle := now.Add(b.timeout); idle.Before(due) {
		return idle
	}
	return due
}

func (b *deadlineBody) bytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

func (b *deadlineBody) Close() error { return b.rc.Close() }

// timeoutWriter answers 408 in place of the handler's response once the body timed out, as limitWriter does 413.
type timeoutWriter struct {
	http.ResponseWriter
	st       *bodyState
	wrote    bool // something (ours or the handler's) went out
	replaced bool
}

var bodyTimeoutJSON = []byte(`{"error":"Request body timed out"}`)

func (t *timeoutWriter) replace() {
	t.wrote, t.replaced = true, true
	t.st.replaced.Store(true)
	h := t.ResponseWriter.Header()
	h.Del("Content-Length")
	h.Set("Connection", "close") // the rest of the body is still on the wire: this connection cannot be reused
	h.Set("Cache-Control", "no-store")
	writeJSONBytes(t.ResponseWriter, http.StatusRequestTimeout, bodyTimeoutJSON)
}

func (t *timeoutWriter) WriteHeader(code int) {
	if t.replaced {
		return
	}
	if !t.wrote && code >= 200 && t.st.timedOut.Load() {
		t.replace()
		return
	}
	if code >= 200 {
		t.wrote = true
		t.st.answered.Store(true)
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *timeoutWriter) Write(b []byte) (int, error) {
	if !t.wrote {
		t.WriteHeader(http.StatusOK)
	}
	if t.replaced {
		return len(b), nil // swallowed: the client gets the 408 body
	}
	return t.ResponseWriter.Write(b)
}

func (t *timeoutWriter) Flush() {
	if !t.replaced {
		_ = http.NewResponseController(t.ResponseWriter).Flush()
	}
}

func (t *timeoutWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
