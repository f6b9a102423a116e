package api

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// The cleanup routes (routes.md §9.1) were global in the original's intent (every empty conversation, every
// legacy key, any legacy message). Here each acts only on the caller's own data, under the caller's token.

// cleanupRoutes registers the three cleanup routes (routes.md §9.1).
func (s *Server) cleanupRoutes(r chi.Router) {
	r.Delete("/cleanup/empty-conversations", s.cleanupEmptyConversations)
	r.Delete("/cleanup/legacy-keys", s.cleanupLegacyKeys)
	r.Delete("/cleanup/legacy-messages", s.cleanupLegacyMessages)
}

// cleanupUnauthorized is the original's 401 body for these routes.
func cleanupUnauthorized(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized - No valid session", "details": "Please login again"})
}

// cleanupCaller authenticates a cleanup route with its own 401 body and finds the caller's internal id; it returns
// the caller's token and id, or false when it has answered.
func (s *Server) cleanupCaller(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	id, ok := identity(r)
	if !ok {
		cleanupUnauthorized(w)
		return "", "", false
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	return id.Token, p.ID, ok
}

// DELETE /api/cleanup/empty-conversations (routes.md §9.1): the caller's own conversations (not note-to-self) without messages.
func (s *Server) cleanupEmptyConversations(w http.ResponseWriter, r *http.Request) {
	token, me, ok := s.cleanupCaller(w, r)
	if !ok {
		return
	}
	rest := s.supa.As(token)
	empty, err := rest.EmptyConversationIDs(r.Context(), me)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to find empty conversations", fixed: true})
		return
	}
	if len(empty) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"message": "No empty conversations found", "deletedCount": 0})
		return
	}
	deleted, err := rest.DeleteCreatedConversations(r.Context(), me, empty)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to delete empty conversations", fixed: true})
		return
	}
	for _, conv := range deleted {
		if err := s.hub.CloseRoom(r.Context(), conv); err != nil {
			s.log.WarnContext(r.Context(), "cleanup: closing room failed", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "Successfully deleted empty conversations", "deletedCount": len(deleted)})
}

// isModernKey says whether a stored public key looks like an ML-KEM-1024 key: it names the algorithm, or its
// base64 decodes to about the 1568 bytes of such a key.
func isModernKey(key string) bool {
	if strings.Contains(key, "ML-KEM-1024") {
		return true
	}
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) >= 1550 && len(b) <= 1590
}

// DELETE /api/cleanup/legacy-keys (routes.md §9.1): the caller's own keys that are not ML-KEM-1024.
func (s *Server) cleanupLegacyKeys(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if !ok {
		cleanupUnauthorized(w)
		return
	}
	rest := s.supa.As(id.Token)
	rows, err := rest.KeysOf(r.Context(), id.AuthUID)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to find legacy keys", fixed: true})
		return
	}
	var legacy []string
	for _, k := range rows {
		if !isModernKey(k.PublicKey) {
			legacy = append(legacy, k.ID)
		}
	}
	if len(legacy) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"message": "No legacy keys found", "updatedCount": 0})
		return
	}
	deleted, err := rest.DeleteKeysByID(r.Context(), id.AuthUID, legacy)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to delete legacy keys", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "Successfully deleted legacy keys", "deletedCount": deleted, "totalLegacyKeys": len(legacy)})
}

var legacyMarkers = [][]byte{[]byte("FALLBACK"), []byte("ML-KEM-768")}

func hasLegacyMarker(b []byte) bool {
	for _, m := range legacyMarkers {
		if bytes.Contains(b, m) {
			return true
		}
	}
	return false
}

// DELETE /api/cleanup/legacy-messages (routes.md §9.1): up to 1000 of the caller's own sent messages whose content carries the
// markers of the retired encryption schemes.
func (s *Server) cleanupLegacyMessages(w http.ResponseWriter, r *http.Request) {
	token, me, ok := s.cleanupCaller(w, r)
	if !ok {
		return
	}
	rest := s.supa.As(token)
	rows, err := rest.SentMessages(r.Context(), me)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to find legacy messages", fixed: true})
		return
	}
	var legacy []string
	for _, m := range rows {
		found := false
		if raw, err := hex.DecodeString(strings.TrimPrefix(m.EncryptedContent, `\x`)); err == nil {
			found = hasLegacyMarker(raw)
		}
		for _, c := range m.Copies {
			if dec, err := base64.StdEncoding.DecodeString(c.EncryptedContent); err == nil && hasLegacyMarker(dec) {
				found = true
			}
		}
		if found {
			legacy = append(legacy, m.ID)
		}
	}
	if len(legacy) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"message": "No legacy messages found", "deletedCount": 0})
		return
	}
	deleted, err := rest.DeleteSentMessages(r.Context(), me, legacy)
	s.emitMessagesDeleted(token, me, deleted) // those that went before a failure went too
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to delete legacy messages", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "Successfully deleted legacy messages", "deletedCount": len(deleted)})
}
