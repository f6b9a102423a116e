package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

// RequestID gives every request an id: the incoming X-Request-Id when it is short and plain (so a front proxy's id
// carries through), else 16 random bytes in hex. The id is echoed in the response header and available through
// RequestIDFrom. Put it first in the chain.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !plainID(id) {
			var b [16]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// plainID accepts only ids that are safe to log and echo: 1–64 of [A-Za-z0-9._-].
func plainID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// RequestIDFrom returns the request id set by RequestID, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// statusWriter records what a handler wrote. It forwards Flush (SSE) and exposes Unwrap so that
// http.ResponseController reaches the underlying writer for deadlines.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (sw *statusWriter) WriteHeader(code int) {
	if sw.status == 0 && code >= 200 { // 1xx informational headers are not the final status
		sw.status = code
	}
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *statusWriter) Write(b []byte) (int, error) {
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	n, err := sw.ResponseWriter.Write(b)
	sw.bytes += int64(n)
	return n, err
}

func (sw *statusWriter) Flush() {
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	_ = http.NewResponseController(sw.ResponseWriter).Flush()
}

func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// Recoverer turns a handler panic into 500 {"error":"Internal server error"} (when nothing was written yet) and logs
// the panic value with its stack; the client never sees either. http.ErrAbortHandler is re-panicked, as net/http
// expects. Put it right after RequestID/AccessLog so the log line carries the request id and the 500.
func Recoverer(logger *slog.Logger) func(http.Handler) http.Handler {
	logger = orDefault(logger)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: w}
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
					panic(v)
				}
				logger.ErrorContext(r.Context(), "panic serving request", "panic", fmt.Sprint(v),
					"method", r.Method, "path", r.URL.Path, "request_id", RequestIDFrom(r.Context()),
					"stack", string(debug.Stack()))
				if sw.status == 0 {
					writeJSONBytes(sw, http.StatusInternalServerError, []byte(`{"error":"Internal server error"}`))
				}
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// logInfo is filled by inner middleware (Authenticate) for the access log, which runs outside them.
type logInfo struct{ user string }

func noteUser(ctx context.Context, uid string) {
	if li, ok := ctx.Value(logInfoKey).(*logInfo); ok {
		li.user = uid
	}
}

// AccessLog logs one line per request at Info: method, path (no query: it may carry tokens), status, bytes,
// duration, request id, the auth uid when Authenticate identified the caller, and the client address (the one
// ResolveClientIP put in the context, else the TCP peer). Put it after RequestID.
func AccessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	logger = orDefault(logger)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			li := &logInfo{}
			sw := &statusWriter{ResponseWriter: w}
			// Deferred so that a panic passing through (Recoverer placed outside) is still logged, as a 500. It is
			// not recovered here, so the outer Recoverer still sees the original stack.
			completed := false
			defer func() {
				status := sw.status
				switch {
				case status == 0 && !completed:
					status = http.StatusInternalServerError
				case status == 0:
					status = http.StatusOK
				}
				logAccess(logger, r, li, status, sw.bytes, time.Since(start))
			}()
			next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), logInfoKey, li)))
			completed = true
		})
	}
}

func logAccess(logger *slog.Logger, r *http.Request, li *logInfo, status int, bytes int64, d time.Duration) {
	if bodyTimedOut(r.Context()) {
		// BodyTimeout, further out, answers 408 in place of the handler.
		status, bytes = http.StatusRequestTimeout, int64(len(bodyTimeoutJSON))
	}
	logger.LogAttrs(r.Context(), slog.LevelInfo, "http request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
		slog.Int64("bytes", bytes), slog.Duration("duration", d),
		slog.String("request_id", RequestIDFrom(r.Context())), slog.String("user", li.user),
		slog.String("client", logClient(r)))
}

// logClient is the client as ResolveClientIP saw it (after TRUSTED_PROXIES), else the TCP peer: never a forwarded
// header that no trusted proxy vouched for. "" when even the peer address is unparsable.
func logClient(r *http.Request) string {
	a, ok := ClientIPFrom(r.Context())
	if !ok {
		a = ClientIP(r, nil)
	}
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// SecurityHeaders sets X-Content-Type-Options: nosniff and, unless already set, Cache-Control: no-store (routes.md
// §2.3). Handlers that want caching set their own Cache-Control, which replaces this default.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if h.Get("Cache-Control") == "" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// BodyLimit caps request bodies at n bytes: a larger Content-Length is refused at once, and a body that grows past
// n while the handler reads it makes the response 413 {"error":"Request body too large"} whatever the handler then
// tries to write (its own answer to the read error is discarded). routes.md §2.3: 1 MiB JSON, 6 MiB avatar upload.
func BodyLimit(n int64) func(http.Handler) http.Handler {
	if n <= 0 {
		panic("middleware: BodyLimit needs a positive size")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				writeTooLarge(w)
				return
			}
			lw := &limitWriter{ResponseWriter: w}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = &limitReader{rc: http.MaxBytesReader(w, r.Body, n), w: lw}
			}
			next.ServeHTTP(lw, r)
			if lw.exceeded && !lw.wrote {
				lw.replace()
			}
		})
	}
}

func writeTooLarge(w http.ResponseWriter) {
	writeJSONBytes(w, http.StatusRequestEntityTooLarge, []byte(`{"error":"Request body too large"}`))
}

// limitReader notes in its writer that the limit was hit.
type limitReader struct {
	rc io.ReadCloser
	w  *limitWriter
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.rc.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		l.w.exceeded = true
	}
	return n, err
}

func (l *limitReader) Close() error { return l.rc.Close() }

// limitWriter replaces the handler's response with 413 once the body limit was exceeded.
type limitWriter struct {
	http.ResponseWriter
	exceeded bool
	wrote    bool // something (ours or the handler's) went out
	replaced bool
}

func (l *limitWriter) replace() {
	l.wrote, l.replaced = true, true
	writeTooLarge(l.ResponseWriter)
}

func (l *limitWriter) WriteHeader(code int) {
	if l.replaced {
		return
	}
	if l.exceeded && !l.wrote {
		l.replace()
		return
	}
	l.wrote = true
	l.ResponseWriter.WriteHeader(code)
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if !l.wrote {
		l.WriteHeader(http.StatusOK)
	}
	if l.replaced {
		return len(b), nil // swallowed: the client gets the 413 body
	}
	return l.ResponseWriter.Write(b)
}

func (l *limitWriter) Flush() {
	if !l.replaced {
		_ = http.NewResponseController(l.ResponseWriter).Flush()
	}
}

func (l *limitWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// CrossSiteFormGuard refuses POST/PUT/PATCH/DELETE with a form-like content type (urlencoded, multipart, text/plain,
// the types a cross-site HTML form can send without a CORS preflight) from a foreign Origin: 403 {"error":"Cross-site
// POST form submissions are forbidden"} (routes.md §2.3). An origin is ours when its host equals the request's Host
// or it is listed in trustedOrigins (scheme://host[:port]: pass the public app origin when a proxy rewrites Host), or
// the browser says Sec-Fetch-Site: same-origin. Without an Origin header, Sec-Fetch-Site: cross-site is refused too;
// a request with neither (curl, webhooks) passes.
func CrossSiteFormGuard(trustedOrigins ...string) func(http.Handler) http.Handler {
	trusted := make(map[string]bool, len(trustedOrigins))
	for _, o := range trustedOrigins {
		trusted[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	forbidden := []byte(`{"error":"Cross-site POST form submissions are forbidden"}`)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
				if formLike(r.Header.Get("Content-Type")) && foreign(r, trusted) {
					writeJSONBytes(w, http.StatusForbidden, forbidden)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

func formLike(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil { // unparsable: judge by the bare type, as browsers send these exact strings
		mt, _, _ = strings.Cut(ct, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}

func foreign(r *http.Request, trusted map[string]bool) bool {
	// Sec-Fetch-Site is set by the browser and cannot be forged by a page, so "same-origin" settles it even when a
	// proxy rewrote Host. Non-browser clients can send anything, but they are not the cross-site-form threat.
	if r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return r.Header.Get("Sec-Fetch-Site") == "cross-site"
	}
	o := strings.ToLower(origin)
	if trusted[o] {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return true // includes "null" (sandboxed or privacy-sensitive contexts)
	}
	return !strings.EqualFold(u.Host, r.Host)
}
