package api

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
)

// keyRoutes registers the public-key routes (routes.md §5).
func (s *Server) keyRoutes(r chi.Router) {
	r.Get("/crypto/public-keys", s.getPublicKey)
	r.Post("/crypto/public-keys", s.getPublicKeys)
	r.Put("/crypto/public-keys", s.putPublicKey)
	r.Get("/crypto/public-keys/all", s.allPublicKeys)
	r.Post("/keys/delete", s.deleteKeys)
	r.Post("/keys/reset", s.resetKeys)
}

// The app's key type, and limits on what a client may store.
const (
	appKeyType      = "ML-KEM-1024"
	maxKeyTypeLen   = 50
	maxPublicKeyLen = 16 << 10
	maxKeyLookups   = 500
)

// authUIDs maps internal ids to auth uids under token (public keys and webhooks are keyed by auth uid, auth.md §6).
func (s *Server) authUIDs(ctx context.Context, token string, ids []string) (map[string]string, error) {
	return s.supa.As(token).AuthUIDs(ctx, ids)
}

// GET /api/crypto/public-keys?user_id=<internal id> (routes.md §5.1).
func (s *Server) getPublicKey(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	userID := r.URL.Query().Get("user_id")
	if userID == "" {
		writeError(w, http.StatusBadRequest, "Missing user_id parameter")
		return
	}
	if !isUUID(userID) {
		writeJSON(w, http.StatusOK, map[string]any{"public_key": nil}) // the unknown-user answer
		return
	}
	uids, err := s.authUIDs(r.Context(), id.Token, []string{userID})
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to fetch public key", fixed: true})
		return
	}
	uid, found := uids[userID]
	if !found {
		writeJSON(w, http.StatusOK, map[string]any{"public_key": nil})
		return
	}
	key, err := s.supa.As(id.Token).PublicKeyOf(r.Context(), uid, appKeyType)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to fetch public key", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"public_key": key, "user_id": userID})
}

// POST /api/crypto/public-keys {user_ids} (routes.md §5.1): the lookup before every encryption, in two queries
// whatever the count; lookup failures answer the ids as keyless rather than fail the send.
func (s *Server) getPublicKeys(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body struct {
		UserIDs any `json:"user_ids"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	arr, isArr := body.UserIDs.([]any)
	if !isArr {
		writeError(w, http.StatusBadRequest, "Missing or invalid user_ids array")
		return
	}
	if len(arr) > maxKeyLookups {
		writeError(w, http.StatusBadRequest, "Too many user_ids")
		return
	}
	keys := make(map[string]*string, len(arr))
	var valid []string
	for _, v := range arr {
		sv, _ := v.(string)
		if sv == "" {
			continue
		}
		keys[sv] = nil
		if isUUID(sv) {
			valid = append(valid, sv)
		}
	}
	if len(valid) > 0 {
		uids, err := s.authUIDs(r.Context(), id.Token, valid)
		if err != nil {
			s.log.WarnContext(r.Context(), "public keys: user lookup failed", "err", err)
			uids = nil
		}
		byAuth := make(map[string][]string, len(uids))
		authList := make([]string, 0, len(uids))
		for internal, auth := range uids {
			if len(byAuth[auth]) == 0 {
				authList = append(authList, auth)
			}
			byAuth[auth] = append(byAuth[auth], internal)
		}
		if len(authList) > 0 {
			rows, err := s.supa.As(id.Token).PublicKeys(r.Context(), authList, appKeyType)
			if err != nil {
				s.log.WarnContext(r.Context(), "public keys: key lookup failed", "err", err)
			}
			for _, row := range rows {
				k := row.PublicKey
				for _, internal := range byAuth[row.UserID] {
					keys[internal] = &k
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"public_keys": keys})
}

// PUT /api/crypto/public-keys {public_key, key_type} (routes.md §5.1): writes only the caller's own key.
func (s *Server) putPublicKey(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body struct {
		PublicKey any `json:"public_key"`
		KeyType   any `json:"key_type"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	key, _ := body.PublicKey.(string)
	if key == "" {
		writeError(w, http.StatusBadRequest, "Missing public_key")
		return
	}
	if len(key) > maxPublicKeyLen {
		writeError(w, http.StatusBadRequest, "public_key is too long")
		return
	}
	keyType := appKeyType
	if truthy(body.KeyType) { // the original defaulted any falsy key_type
		kt, isStr := body.KeyType.(string)
		if !isStr || kt == "" || len(kt) > maxKeyTypeLen {
			writeError(w, http.StatusBadRequest, "key_type must be a string of at most 50 characters")
			return
		}
		keyType = kt
	}
	keyID, err := s.supa.As(id.Token).UpsertPublicKey(r.Context(), id.AuthUID, key, keyType)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to sync public key", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Public key synced successfully", "key_id": keyID})
}

// GET /api/crypto/public-keys/all (routes.md §5.2): a bare array of {user_id (auth uid), public_key}, kept as the key-status panel
// reads it; now only for signed-in users (the original served it to anyone).
func (s *Server) allPublicKeys(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	rows, err := s.supa.As(id.Token).AllPublicKeys(r.Context())
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to fetch user keys", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, rows)
}

// POST /api/keys/delete: removes the caller's public keys (routes.md §5.3).
func (s *Server) deleteKeys(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Authentication required")
	if !ok {
		return
	}
	if err := s.supa.As(id.Token).DeletePublicKeys(r.Context(), id.AuthUID); err != nil {
		s.fail(w, r, err, failures{internal: "Database deletion failed", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Public key deleted successfully"})
}

// POST /api/keys/reset {publicKey}: replaces the caller's ML-KEM-1024 key (routes.md §5.4); auth comes first now.
func (s *Server) resetKeys(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Authentication required")
	if !ok {
		return
	}
	var body struct {
		PublicKey any `json:"publicKey"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	key, _ := body.PublicKey.(string)
	if key == "" {
		writeError(w, http.StatusBadRequest, "Missing required field: publicKey")
		return
	}
	if len(key) > maxPublicKeyLen {
		writeError(w, http.StatusBadRequest, "publicKey is too long")
		return
	}
	if _, err := s.supa.As(id.Token).UpsertPublicKey(r.Context(), id.AuthUID, key, appKeyType); err != nil {
		s.fail(w, r, err, failures{internal: "Database update failed", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Public key updated successfully"})
}
