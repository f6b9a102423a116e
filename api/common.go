package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"

	"github.com/qryptchat/suparelay/middleware"

	"github.com/qryptchat/suparelay/supa"
)

var uuidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// isUUID reports whether s is a canonical UUID; ids are checked before they reach a PostgREST filter.
func isUUID(s string) bool { return uuidRe.MatchString(s) }

// requireUser answers 401 with msg when the request carries no valid user identity.
func (s *Server) requireUser(w http.ResponseWriter, r *http.Request, msg string) (middleware.Identity, bool) {
	id, ok := identity(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="authentication required"`)
		writeError(w, http.StatusUnauthorized, msg)
	}
	return id, ok
}

// requireUserWith is requireUser for routes whose contract gives one 401 text when no credentials were sent and
// another when the token (or cookie session) was refused.
func (s *Server) requireUserWith(w http.ResponseWriter, r *http.Request, noCredentials, invalid string) (middleware.Identity, bool) {
	if reason, present := middleware.AuthFailureFrom(r.Context()); present && reason != middleware.FailNoCredentials {
		return s.requireUser(w, r, invalid)
	}
	return s.requireUser(w, r, noCredentials)
}

// requireProfile answers the route's "no profile" 404 (default "User not found") when the caller has no users
// row, and the mapped database failure otherwise.
func (s *Server) requireProfile(w http.ResponseWriter, r *http.Request, id middleware.Identity, notFound string) (profile, bool) {
	p, err := s.profileOf(r.Context(), id)
	if err == nil {
		return p, true
	}
	if errors.Is(err, supa.ErrNoProfile) {
		writeError(w, http.StatusNotFound, notFound)
		return profile{}, false
	}
	s.fail(w, r, err, failures{internal: "Internal server error"})
	return profile{}, false
}

// conversationBody is the {conversationId} body of the chat store's POSTs.
type conversationBody struct {
	ConversationID any `json:"conversationId"`
}

// conversationID extracts and validates conversationId; it answers 400 itself when missing or malformed.
func conversationID(w http.ResponseWriter, v any) (string, bool) {
	id, _ := v.(string)
	if v == nil || id == "" {
		writeError(w, http.StatusBadRequest, "Missing conversationId")
		return "", false
	}
	if !isUUID(id) {
		writeError(w, http.StatusBadRequest, "Invalid conversationId")
		return "", false
	}
	return id, true
}

// mustJSON marshals values the server built itself (never fails for them).
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return b
}

func itoa(n int) string { return strconv.Itoa(n) }

// convCall is a chat-store POST of {"conversationId"} that has passed authentication, validation and the profile
// lookup, in the order the contract answers them (401, 413/400, 400, 404).
type convCall struct {
	id   middleware.Identity
	me   profile
	conv string
}

// conversationCall reads such a request; it answers the failures itself and returns false after doing so.
func (s *Server) conversationCall(w http.ResponseWriter, r *http.Request) (convCall, bool) {
	var c convCall
	var ok bool
	if c.id, ok = s.requireUser(w, r, "Unauthorized"); !ok {
		return c, false
	}
	var body conversationBody
	if !readJSON(w, r, &body) {
		return c, false
	}
	if c.conv, ok = conversationID(w, body.ConversationID); !ok {
		return c, false
	}
	c.me, ok = s.requireProfile(w, r, c.id, "User not found")
	return c, ok
}
