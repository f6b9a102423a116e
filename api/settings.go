package api

import (
	"errors"
	"math"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/supa"
)

// settingsRoutes registers the disappearing-messages settings (routes.md §9.2, §6.10, §6.11) and the group list
// (§7.4), whose handlers live here.
func (s *Server) settingsRoutes(r chi.Router) {
	r.Get("/settings/disappearing-messages", s.getRetention)
	r.Put("/settings/disappearing-messages", s.putRetention)
	r.Get("/conversations/{id}/disappearing-messages", s.getDisappearing)
	r.Put("/conversations/{id}/disappearing-messages", s.putDisappearing)
	r.Get("/conversations/{id}/disappearing-messages/presets", s.disappearingPresets)
	r.Get("/chat/groups", s.listGroups)
}

const (
	maxRetentionDays    = 3650
	maxDisappearSeconds = 31_536_000
)

// GET /api/settings/disappearing-messages (routes.md §9.2).
func (s *Server) getRetention(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUserWith(w, r, "Missing or invalid authorization header", "Invalid token")
	if !ok {
		return
	}
	stored, err := s.supa.As(id.Token).RetentionDays(r.Context(), id.AuthUID)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to fetch user settings", fixed: true})
		return
	}
	days := 30 // the column's default, answered for a caller without a row too
	if stored != nil {
		days = *stored
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "default_message_retention_days": days})
}

// PUT /api/settings/disappearing-messages {default_message_retention_days} (routes.md §9.2).
func (s *Server) putRetention(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUserWith(w, r, "Missing or invalid authorization header", "Invalid token")
	if !ok {
		return
	}
	var body struct {
		Days any `json:"default_message_retention_days"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	f, isNum := body.Days.(float64)
	if !isNum || f < 0 || f > maxRetentionDays || f != math.Trunc(f) {
		writeError(w, http.StatusBadRequest, "Invalid retention days value")
		return
	}
	if err := s.supa.As(id.Token).SetRetentionDays(r.Context(), id.AuthUID, int(f)); err != nil {
		s.fail(w, r, err, failures{internal: "Failed to update settings", fixed: true, refusals: map[error]answer{
			supa.ErrNoProfile: {http.StatusNotFound, "Profile not found"}}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Disappearing messages setting updated successfully"})
}

type disappearSettings struct {
	DisappearSeconds int    `json:"disappear_seconds"`
	StartOn          string `json:"start_on"`
	Enabled          bool   `json:"enabled"`
}

// GET /api/conversations/{id}/disappearing-messages (routes.md §6.10): the caller's own timer for the conversation.
func (s *Server) getDisappearing(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUserWith(w, r, legacyNoAuth, legacyBadAuth)
	if !ok {
		return
	}
	convID := chi.URLParam(r, "id")
	p, ok := s.requireProfile(w, r, id, "User not found")
	if !ok {
		return
	}
	if !isUUID(convID) {
		writeError(w, http.StatusForbidden, "Not a participant in this conversation")
		return
	}
	part, err := s.supa.As(id.Token).Participant(r.Context(), convID, p.ID)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to fetch settings", fixed: true})
		return
	}
	if part == nil || part.LeftAt != nil {
		writeError(w, http.StatusForbidden, "Not a participant in this conversation")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "settings": disappearSettings{
		DisappearSeconds: part.DisappearSeconds, StartOn: part.StartOn, Enabled: part.DisappearSeconds > 0}})
}

// PUT /api/conversations/{id}/disappearing-messages {disappear_seconds, start_on} (routes.md §6.10): sets the
// caller's own timer, for messages sent from now on.
func (s *Server) putDisappearing(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUserWith(w, r, legacyNoAuth, legacyBadAuth)
	if !ok {
		return
	}
	convID := chi.URLParam(r, "id")
	var body struct {
		Seconds any `json:"disappear_seconds"`
		StartOn any `json:"start_on"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	f, isNum := body.Seconds.(float64)
	if !isNum || f < 0 || f != math.Trunc(f) || f > maxDisappearSeconds {
		writeError(w, http.StatusBadRequest, "disappear_seconds must be a non-negative number")
		return
	}
	startOn := "delivered"
	if truthy(body.StartOn) {
		so, _ := body.StartOn.(string)
		if so != "delivered" && so != "read" {
			writeError(w, http.StatusBadRequest, `start_on must be either "delivered" or "read"`)
			return
		}
		startOn = so
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	if !ok {
		return
	}
	if !isUUID(convID) {
		writeError(w, http.StatusForbidden, "Not a participant in this conversation")
		return
	}
	if err := s.supa.As(id.Token).SetDisappearing(r.Context(), convID, p.ID, int(f), startOn); err != nil {
		s.fail(w, r, err, failures{internal: "Failed to update settings", fixed: true, refusals: map[error]answer{
			supa.ErrNotParticipant: {http.StatusForbidden, "Not a participant in this conversation"}}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true,
		"settings": disappearSettings{DisappearSeconds: int(f), StartOn: startOn, Enabled: f > 0},
		"message":  "Settings updated successfully. Changes will apply to new messages only."})
}

type preset struct {
	Label       string `json:"label"`
	Seconds     int    `json:"seconds"`
	Description string `json:"description"`
}

// GET /api/conversations/{id}/disappearing-messages/presets (routes.md §6.11).
func (s *Server) disappearingPresets(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireUserWith(w, r, legacyNoAuth, legacyBadAuth); !ok {
		return
	}
	presets := []preset{{"Off", 0, "Messages never disappear"}}
	for _, p := range []struct {
		label string
		secs  int
	}{{"30 seconds", 30}, {"1 minute", 60}, {"5 minutes", 300}, {"30 minutes", 1800}, {"1 hour", 3600},
		{"6 hours", 21600}, {"1 day", 86400}, {"1 week", 604800}} {
		presets = append(presets, preset{p.label, p.secs, "Messages disappear after " + p.label})
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "presets": presets, "start_on_options": []map[string]string{
		{"value": "delivered", "label": "When delivered", "description": "Timer starts when message is delivered"},
		{"value": "read", "label": "When read", "description": "Timer starts when message is read"},
	}})
}

// GET /api/chat/groups (routes.md §7.4): the original passed the auth uid and always got nothing.
func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	p, err := s.profileOf(r.Context(), id)
	if errors.Is(err, supa.ErrNoProfile) {
		writeJSON(w, http.StatusOK, map[string]any{"groups": []any{}})
		return
	}
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to load groups", fixed: true})
		return
	}
	groups, err := s.supa.As(id.Token).GroupsOf(r.Context(), p.ID)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to load groups", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": groups})
}
