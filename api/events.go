package api

import (
	"errors"
	"net/http"

	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
)

// events serves GET /api/events, the browser's only real-time channel (sse.md). Authentication comes from the
// session cookie (EventSource cannot send headers); the stream is registered under the caller's internal id and
// ends when the access token it was opened with expires, so that the browser reconnects with its refreshed cookie.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	// A refused stream costs the browser one of its five manual retries (frontend.md §2): its one-row profile
	// lookup waits for a PostgREST slot for as long as a read may take, rather than being shed after the short wait.
	p, err := s.profileOf(supa.WithGateWait(r.Context(), s.timeouts.Read), id)
	if errors.Is(err, supa.ErrNoProfile) {
		writeError(w, http.StatusNotFound, "User not found")
		return
	}
	if err != nil {
		s.fail(w, r, err, failures{internal: "Internal server error"})
		return
	}
	s.hub.ServeStream(w, r, p.ID, id.Expires)
}

// eventsHead answers HEAD /api/events with the stream's headers and no body: running the stream for a HEAD
// request would hold the connection open forever.
func (s *Server) eventsHead(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if _, err := s.profileOf(r.Context(), id); errors.Is(err, supa.ErrNoProfile) {
		writeError(w, http.StatusNotFound, "User not found")
		return
	} else if err != nil {
		s.fail(w, r, err, failures{internal: "Internal server error"})
		return
	}
	relay.SetStreamHeaders(w.Header(), r.ProtoMajor)
	w.WriteHeader(http.StatusOK)
}
