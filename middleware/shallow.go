package middleware

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
)

// ShallowConnStacks runs each request's handler on a goroutine of its own while the connection's goroutine waits.
// The point is memory per keep-alive connection: net/http serves a connection on one goroutine for its whole life,
// and a goroutine's stack keeps the size its deepest call needed (the GC halves it only while under a quarter is in
// use). A browser tab keeps a keep-alive connection open beside its SSE stream, idle between fetches; after one
// request through the whole chain (front door, routes, auth, JSON, the upstream call) that idle goroutine would hold
// the stack of the request. With the handler elsewhere, the connection's goroutine only ever parses requests, and the
// handler's stack is freed when it ends. Costs one goroutine start per request.
//
// A panic in the handler is carried back to the connection's goroutine, so net/http handles it as before
// (http.ErrAbortHandler aborts the response silently, anything else is logged with its stack and the connection
// closed); runtime.Goexit in the handler aborts the response the same way.
func ShallowConnStacks(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			done := make(chan any, 1)
			go func() {
				normal := false
				defer func() {
					if normal {
						done <- nil
						return
					}
					v := recover()
					if v == nil { // runtime.Goexit: panic(nil) recovers as a *runtime.PanicNilError
						v = http.ErrAbortHandler
					}
					if v != http.ErrAbortHandler {
						// The stack is the handler's; net/http would log the connection goroutine's instead.
						log.Error("panic serving request", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
					}
					done <- v
				}()
				next.ServeHTTP(w, r)
				normal = true
			}()
			if v := <-done; v != nil {
				panic(v)
			}
		})
	}
}
