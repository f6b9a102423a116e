package api

import (
	"context"
	"net/http"
	"time"
)

// GET /healthz (README, Configuration: endpoints besides /api): the process is alive; it checks nothing else.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// GET /readyz (README, Configuration: endpoints besides /api): whether this node can serve: PostgREST and Storage answer, signing keys are loaded, the event broker
// is healthy.
// 503 with the reasons otherwise, so a load balancer keeps traffic away from a node that would only fail.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	reasons := map[string]string{}
	if err := s.supa.Ping(ctx); err != nil {
		reasons["postgrest"] = "unreachable"
	}
	if err := s.supa.PingStorage(ctx); err != nil {
		reasons["storage"] = "unreachable"
	}
	if s.verifier != nil {
		if err := s.verifier.Ready(); err != nil {
			reasons["signing_keys"] = "not loaded"
		}
	}
	if s.hub != nil {
		if err := s.hub.Ready(ctx); err != nil {
			reasons["broker"] = "unavailable"
		}
	}
	if len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reasons": reasons})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
