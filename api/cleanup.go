package api

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/supa"
)

// The cleanup routes (routes.md §9.1) were global in the original's intent (every empty conversation, every
// legacy key, any legacy message). Here each acts only on the caller's own data, under the caller's token.

func (s *Server) cleanupRoutes(r chi.Router) {
	r.Delete("/cleanup/empty-conversations", s.cleanupEmptyConversations)
	r.Delete("/cleanup/legacy-keys", s.cleanupLegacyKeys)
	r.Delete("/cleanup/legacy-messages", s.cleanupLegacyMessages)
}

// cleanupUnauthorized is the original's 401 body for these routes.
func cleanupUnauthorized(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized - No valid session", "details": "Please login again"})
}

func (s *Server) cleanupCaller(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	id, ok := identity(r)
	if !ok {
		cleanupUnauthorized(w)
		return "", "", false
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	return id.Token, p.ID, ok
}

// DELETE /api/cleanup/empty-conversations: the caller's own conversations (not note-to-self) without messages.
func (s *Server) cleanupEmptyConversations(w http.ResponseWriter, r *http.Request) {
	token, me, ok := s.cleanupCaller(w, r)
	if !ok {
		return
	}
	rest := s.supa.As(token)
	var rows []struct {
		ID       string `json:"id"`
		Messages []struct {
			Count int `json:"count"`
		} `json:"messages"`
	}
	err := rest.Select(r.Context(), "conversations", supa.Q("select", "id,messages(count)",
		"created_by", "eq."+me, "type", "neq.note_to_self", "limit", "1000"), &rows)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to find empty conversations")
		return
	}
	var empty []string
	for _, c := range rows {
		if len(c.Messages) == 0 || c.Messages[0].Count == 0 {
			empty = append(empty, c.ID)
		}
	}
	if len(empty) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"message": "No empty conversations found", "deletedCount": 0})
		return
	}
	var deleted []struct {
		ID string `json:"id"`
	}
	if err := rest.Delete(r.Context(), "conversations", supa.Q("id", supa.In(empty), "created_by", "eq."+me, "select", "id"), &deleted); err != nil {
		s.dbFailureFixed(w, r, err, "Failed to delete empty conversations")
		return
	}
	for _, d := range deleted {
		if err := s.hub.CloseRoom(r.Context(), d.ID); err != nil {
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

// DELETE /api/cleanup/legacy-keys: the caller's own keys that are not ML-KEM-1024.
func (s *Server) cleanupLegacyKeys(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if !ok {
		cleanupUnauthorized(w)
		return
	}
	rest := s.supa.As(id.Token)
	var rows []struct {
		ID        string `json:"id"`
		PublicKey string `json:"public_key"`
	}
	if err := rest.Select(r.Context(), "user_public_keys", supa.Q("select", "id,public_key", "user_id", "eq."+id.AuthUID), &rows); err != nil {
		s.dbFailureFixed(w, r, err, "Failed to find legacy keys")
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
	var deleted []struct {
		ID string `json:"id"`
	}
	if err := rest.Delete(r.Context(), "user_public_keys", supa.Q("id", supa.In(legacy), "user_id", "eq."+id.AuthUID, "select", "id"), &deleted); err != nil {
		s.dbFailureFixed(w, r, err, "Failed to delete legacy keys")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "Successfully deleted legacy keys", "deletedCount": len(deleted), "totalLegacyKeys": len(legacy)})
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

// DELETE /api/cleanup/legacy-messages: up to 1000 of the caller's own sent messages whose content carries the
// markers of the retired encryption schemes.
func (s *Server) cleanupLegacyMessages(w http.ResponseWriter, r *http.Request) {
	token, me, ok := s.cleanupCaller(w, r)
	if !ok {
		return
	}
	rest := s.supa.As(token)
	var rows []struct {
		ID               string `json:"id"`
		EncryptedContent string `json:"encrypted_content"`
		Copies           []struct {
			EncryptedContent string `json:"encrypted_content"`
		} `json:"message_recipients"`
	}
	err := rest.Select(r.Context(), "messages", supa.Q("select", "id,encrypted_content,message_recipients(encrypted_content)",
		"sender_id", "eq."+me, "order", "created_at.asc", "limit", "1000"), &rows)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to find legacy messages")
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
	var deleted []json.RawMessage
	for start := 0; start < len(legacy); start += 100 {
		var part []json.RawMessage
		err := rest.Delete(r.Context(), "messages", supa.Q("id", supa.In(legacy[start:min(start+100, len(legacy))]),
			"sender_id", "eq."+me, "select", "id,conversation_id"), &part)
		if err != nil {
			s.dbFailureFixed(w, r, err, "Failed to delete legacy messages")
			return
		}
		deleted = append(deleted, part...)
	}
	s.emitMessagesDeletedRows(token, me, deleted)
	writeJSON(w, http.StatusOK, map[string]any{"message": "Successfully deleted legacy messages", "deletedCount": len(deleted)})
}
