package api

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// UpstreamTimeouts bound how long one request may spend on Supabase, by what the route does. One timeout for
// everything (supa's 10 s) let a list read hold a PostgREST connection as long as an upload, so under load reads
// queued behind each other into 10 s failures. A route's deadline covers all of its upstream calls together and
// only ever shortens supa's own per-call bound.
//
//   - Read: GET/HEAD routes and the POST routes that only read (messages/load, conversations/load): one or two
//     indexed queries, so an answer that takes longer will not come.
//   - Send: the two message sends. It is also a send's commit deadline: the database refuses to commit a send
//     later (api_send_message p_not_after), which is what makes an unheard outcome resolvable (send_outcome.go);
//     the default stays within the API roles' statement_timeout (8 s), past which PostgreSQL cancels anyway.
//   - Write: every other write (settings, keys, conversation changes, account deletion), some of which make
//     several calls or do CPU work (PIN hashing) inside the budget.
//   - Upload: file and avatar uploads and file downloads, which move bytes through Storage.
//
// The event stream has none: it is long-lived by design and makes its Supabase calls with their own bounds.
type UpstreamTimeouts struct {
	Read   time.Duration // zero = DefaultReadTimeout
	Send   time.Duration // zero = DefaultSendTimeout
	Write  time.Duration // zero = DefaultWriteTimeout
	Upload time.Duration // zero = DefaultUploadTimeout
}

// The default upstream budgets of a route.
const (
	DefaultReadTimeout   = 5 * time.Second
	DefaultSendTimeout   = 8 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
	DefaultUploadTimeout = 40 * time.Second
)

func (t UpstreamTimeouts) withDefaults() UpstreamTimeouts {
	if t.Read <= 0 {
		t.Read = DefaultReadTimeout
	}
	if t.Send <= 0 {
		t.Send = DefaultSendTimeout
	}
	if t.Write <= 0 {
		t.Write = DefaultWriteTimeout
	}
	if t.Upload <= 0 {
		t.Upload = DefaultUploadTimeout
	}
	return t
}

// readPOSTs are the POST routes that only read; sendPOSTs the routes that send a message.
var (
	readPOSTs = map[string]bool{"/api/messages/load": true, "/api/conversations/load": true}
	sendPOSTs = map[string]bool{"/api/messages/send": true, "/api/chat/messages": true}
)

// forRequest is the budget of the route r asks for.
func (t UpstreamTimeouts) forRequest(r *http.Request) time.Duration {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/api/files/"), p == "/api/auth/upload-avatar":
		return t.Upload
	case r.Method == http.MethodGet || r.Method == http.MethodHead || readPOSTs[p]:
		return t.Read
	case r.Method == http.MethodPost && sendPOSTs[p]:
		return t.Send
	}
	return t.Write
}

// upstreamDeadline gives each request the context deadline of its route group.
func (s *Server) upstreamDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.timeouts.forRequest(r))
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
