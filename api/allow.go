package api

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// probeMethods are the methods an Allow header can list, in the order it lists them.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions}

// methodNotAllowedWithAllow is the /api 405 answer with the Allow header routes.md §2.1 requires. chi writes Allow
// only in its built-in 405 handler, which a custom MethodNotAllowed handler replaces, so the methods are looked up
// here from the router itself.
func methodNotAllowedWithAllow(w http.ResponseWriter, r *http.Request) {
	if allow := allowedMethods(r); allow != "" {
		w.Header().Set("Allow", allow)
	}
	methodNotAllowed(w, r)
}

// allowedMethods lists the methods the router serves for the request's path. HEAD is listed with GET because HEAD
// on a GET route runs the GET handler without a body (chi's GetHead middleware).
func allowedMethods(r *http.Request) string {
	rctx := chi.RouteContext(r.Context())
	if rctx == nil || rctx.Routes == nil {
		return ""
	}
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	found := map[string]bool{}
	for _, m := range probeMethods {
		// Find mutates the context it is given: a fresh one per probe keeps the request's own routing intact.
		if rctx.Routes.Find(chi.NewRouteContext(), m, path) != "" {
			found[m] = true
		}
	}
	if found[http.MethodGet] {
		found[http.MethodHead] = true
	}
	var out []string
	for _, m := range probeMethods {
		if found[m] {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}
