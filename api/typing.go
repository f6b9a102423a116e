package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/relay"
)

// typingRoutes registers the typing routes (routes.md §6.9).
func (s *Server) typingRoutes(r chi.Router) {
	r.Post("/typing/start", s.typing(true))
	r.Post("/typing/stop", s.typing(false))
}

// POST /api/typing/start and /api/typing/stop (routes.md §6.9): relays USER_TYPING to the conversation's room minus
// the sender. Nothing is written to the database. Only active participants may type: the original let anyone
// inject typing indicators anywhere.
func (s *Server) typing(start bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.conversationCall(w, r)
		if !ok {
			return
		}
		id, p, convID := c.id, c.me, c.conv
		members, err := s.supa.As(id.Token).ActiveParticipantIDs(r.Context(), convID)
		if err != nil {
			s.fail(w, r, err, failures{internal: "Internal server error"})
			return
		}
		if !contains(members, p.ID) {
			writeError(w, http.StatusForbidden, "Access denied to conversation")
			return
		}
		ev := relay.TypingStopEvent(p.ID, convID)
		if start {
			ev = relay.TypingStartEvent(p.ID, p.Username, p.DisplayName, convID)
		}
		// Typing goes only to users who joined the room: the browser does not filter typing by conversation.
		if err := s.hub.PublishToRoom(r.Context(), convID, ev, relay.PublishOptions{ExcludeUser: p.ID, Participants: members, MembersOnly: true}); err != nil {
			s.log.WarnContext(r.Context(), "typing: publish failed", "conversation", convID, "err", err)
		}
		writeJSON(w, http.StatusOK, map[string]bool{"success": true})
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
