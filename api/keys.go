package api

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/supa"
)

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

// authUIDs maps internal ids to auth uids (public keys are keyed by auth uid, auth.md §6).
func (s *Server) authUIDs(ctx context.Context, token string, ids []string) (map[string]string, error) {
	var rows []struct {
		ID         string  `json:"id"`
		AuthUserID *string `json:"auth_user_id"`
	}
	if err := s.supa.As(token).Select(ctx, "users", supa.Q("select", "id,auth_user_id", "id", supa.In(ids)), &rows); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, row := range rows {
		if row.AuthUserID != nil {
			out[row.ID] = *row.AuthUserID
		}
	}
	return out, nil
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
		s.dbFailureFixed(w, r, err, "Failed to fetch public key")
		return
	}
	uid, found := uids[userID]
	if !found {
		writeJSON(w, http.StatusOK, map[string]any{"public_key": nil})
		return
	}
	var key *string
	if err := s.supa.As(id.Token).RPC(r.Context(), "get_user_public_key",
		map[string]any{"target_user_id": uid, "key_type_param": appKeyType}, &key); err != nil {
		s.dbFailureFixed(w, r, err, "Failed to fetch public key")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"public_key": key, "user_id": userID})
}

// POST /api/crypto/public-keys {user_ids} — the lookup before every encryption, in two queries whatever the count.
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
			var rows []struct {
				UserID    string `json:"user_id"`
				PublicKey string `json:"public_key"`
			}
			err := s.supa.As(id.Token).Select(r.Context(), "user_public_keys", supa.Q("select", "user_id,public_key",
				"key_type", "eq."+appKeyType, "user_id", supa.In(authList)), &rows)
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

// PUT /api/crypto/public-keys {public_key, key_type}: writes only the caller's own key.
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
	var keyID string
	err := s.supa.As(id.Token).RPC(r.Context(), "upsert_user_public_key", map[string]any{
		"target_user_id": id.AuthUID, "public_key_param": key, "key_type_param": keyType}, &keyID)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to sync public key")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Public key synced successfully", "key_id": keyID})
}

// GET /api/crypto/public-keys/all: a bare array of {user_id (auth uid), public_key}, kept as the key-status panel
// reads it; now only for signed-in users (the original served it to anyone).
func (s *Server) allPublicKeys(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	rows := []struct {
		UserID    string `json:"user_id"`
		PublicKey string `json:"public_key"`
	}{}
	err := s.supa.As(id.Token).Select(r.Context(), "user_public_keys",
		supa.Q("select", "user_id,public_key", "public_key", "not.is.null", "order", "user_id.asc", "limit", "1000"), &rows)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to fetch user keys")
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
	if err := s.supa.As(id.Token).Delete(r.Context(), "user_public_keys", supa.Q("user_id", "eq."+id.AuthUID), nil); err != nil {
		s.dbFailureFixed(w, r, err, "Database deletion failed")
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
	err := s.supa.As(id.Token).RPC(r.Context(), "upsert_user_public_key", map[string]any{
		"target_user_id": id.AuthUID, "public_key_param": key, "key_type_param": appKeyType}, nil)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Database update failed")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Public key updated successfully"})
}
