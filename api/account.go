package api

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/supa"
)

func (s *Server) accountRoutes(r chi.Router) {
	r.Get("/auth/backup-pin", s.getBackupPin)
	r.Post("/auth/backup-pin", s.setBackupPin)
	r.Get("/auth/salt", s.getSalt)
	r.Post("/auth/salt", s.setSalt)
	r.Post("/auth/upload-avatar", s.uploadAvatar)
	r.Delete("/auth/upload-avatar", s.removeAvatar)
	r.Post("/profile/update", s.updateProfile)
	r.Delete("/user/nuclear-delete", s.nuclearDelete)
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch} {
		r.Method(m, "/user/nuclear-delete", http.HandlerFunc(nuclearDeleteOnly))
	}
}

// nuclearDeleteOnly is the original's 405 JSON stub for the other methods of /api/user/nuclear-delete.
func nuclearDeleteOnly(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodDelete)
	methodNotAllowed(w, r)
}

// ---- backup PIN (routes.md §3.1) ----

func (s *Server) getBackupPin(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	row, ok := s.requireOwnRow(w, r, id.Token, "Failed to check backup PIN", "User not found")
	if !ok {
		return
	}
	has, _ := row["has_backup_pin"].(bool)
	writeJSON(w, http.StatusOK, map[string]bool{"hasPin": has})
}

var digitsOnly = regexp.MustCompile(`^[0-9]+$`)

// pinIterations is the PBKDF2-SHA256 cost of a stored PIN hash. The original stored an unsalted SHA-256 of a
// 6-digit PIN in a world-readable column: trivially reversible. Only the hash's presence is ever read.
const pinIterations = 210_000

// hashPIN returns "pbkdf2-sha256$<iterations>$<salt>$<key>" (base64url, no padding).
func hashPIN(pin string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha256.New, pin, salt, pinIterations, 32)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return "pbkdf2-sha256$" + strconv.Itoa(pinIterations) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key), nil
}

func (s *Server) setBackupPin(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body struct {
		Pin any `json:"pin"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	pin, isStr := body.Pin.(string)
	if !isStr || len(pin) < 6 || len(pin) > 12 {
		writeError(w, http.StatusBadRequest, "PIN must be 6-12 digits")
		return
	}
	if !digitsOnly.MatchString(pin) {
		writeError(w, http.StatusBadRequest, "PIN must contain only digits")
		return
	}
	hash, err := hashPIN(pin)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Failed to set backup PIN")
		return
	}
	s.updateOwnRow(w, r, id, map[string]any{"backup_pin_hash": hash}, "Failed to set backup PIN", "User not found",
		map[string]bool{"success": true})
}

// updateOwnRow patches the caller's users row under their token and answers ok, notFound (no row) or failure.
func (s *Server) updateOwnRow(w http.ResponseWriter, r *http.Request, id middleware.Identity, fields map[string]any, failure, notFound string, ok any) {
	var rows []struct {
		ID string `json:"id"`
	}
	err := s.supa.As(id.Token).Update(r.Context(), "users", fields, supa.Q("auth_user_id", "eq."+id.AuthUID, "select", "id"), &rows)
	if err != nil {
		s.dbFailureFixed(w, r, err, failure)
		return
	}
	if len(rows) == 0 {
		writeError(w, http.StatusNotFound, notFound)
		return
	}
	writeJSON(w, http.StatusOK, ok)
}

// ---- salt (routes.md §3.5): only for the caller's own phone number now ----

func (s *Server) getSalt(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	phone := r.URL.Query().Get("phone")
	if phone == "" {
		writeError(w, http.StatusBadRequest, "Missing phone parameter")
		return
	}
	row, ok := s.ownRowForPhone(w, r, id, phone)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"salt": row["salt"]})
}

func (s *Server) setSalt(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body struct {
		Phone any `json:"phone"`
		Salt  any `json:"salt"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	phone, _ := body.Phone.(string)
	salt, _ := body.Salt.(string)
	if phone == "" || salt == "" {
		writeError(w, http.StatusBadRequest, "Missing phone or salt")
		return
	}
	if len(salt) > 4096 {
		writeError(w, http.StatusBadRequest, "salt is too long")
		return
	}
	row, ok := s.ownRowForPhone(w, r, id, phone)
	if !ok {
		return
	}
	if existing, _ := row["salt"].(string); existing != "" {
		writeJSON(w, http.StatusOK, map[string]any{"salt": existing, "existing": true})
		return
	}
	s.updateOwnRow(w, r, id, map[string]any{"salt": salt}, "Failed to store salt", "User not found",
		map[string]any{"salt": salt, "existing": false})
}

// ownRowForPhone returns the caller's row when phone is the caller's own number; it answers 404/403 itself.
func (s *Server) ownRowForPhone(w http.ResponseWriter, r *http.Request, id middleware.Identity, phone string) (map[string]any, bool) {
	row, ok := s.requireOwnRow(w, r, id.Token, "Failed to fetch salt", "User not found")
	if !ok {
		return nil, false
	}
	if own, _ := row["phone_number"].(string); own == "" || own != phone {
		writeError(w, http.StatusForbidden, "Forbidden")
		return nil, false
	}
	return row, true
}

// ---- avatar (routes.md §3.8) ----

const (
	maxAvatarBody = 6 << 20
	maxAvatarFile = 5 << 20
)

var avatarTypes = map[string]string{"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}

// sniffImage names the image type of data by its magic bytes ("" when none of the four allowed).
func sniffImage(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return "image/jpeg"
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(data, []byte("GIF87a")) || bytes.HasPrefix(data, []byte("GIF89a")):
		return "image/gif"
	case len(data) >= 12 && bytes.Equal(data[:4], []byte("RIFF")) && bytes.Equal(data[8:12], []byte("WEBP")):
		return "image/webp"
	}
	return ""
}

var extRe = regexp.MustCompile(`^[A-Za-z0-9]{1,5}$`)

// avatarAuth answers the avatar routes' own 401 texts; it returns false when it has answered.
func (s *Server) avatarAuth(w http.ResponseWriter, r *http.Request) (middleware.Identity, bool) {
	id, ok := identity(r)
	if ok {
		return id, true
	}
	if reason, present := middleware.AuthFailureFrom(r.Context()); present && reason != middleware.FailNoCredentials {
		writeError(w, http.StatusUnauthorized, "Invalid authentication token")
	} else {
		writeError(w, http.StatusUnauthorized, "Authentication required")
	}
	return id, false
}

func (s *Server) uploadAvatar(w http.ResponseWriter, r *http.Request) {
	id, ok := s.avatarAuth(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAvatarBody)
	if err := r.ParseMultipartForm(maxAvatarBody); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "Request body too large")
			return
		}
		writeError(w, http.StatusBadRequest, "No file provided")
		return
	}
	defer r.MultipartForm.RemoveAll()
	file, header, err := r.FormFile("avatar")
	if err != nil {
		writeError(w, http.StatusBadRequest, "No file provided")
		return
	}
	defer file.Close()
	const badType = "Invalid file type. Please upload JPEG, PNG, WebP, or GIF images only."
	declared := strings.ToLower(header.Header.Get("Content-Type"))
	ext, allowed := avatarTypes[declared]
	if !allowed {
		writeError(w, http.StatusBadRequest, badType)
		return
	}
	if header.Size > maxAvatarFile {
		writeError(w, http.StatusBadRequest, "File size too large. Please upload files smaller than 5MB.")
		return
	}
	data, err := io.ReadAll(io.LimitReader(file, maxAvatarFile+1))
	if err != nil || len(data) == 0 {
		writeError(w, http.StatusBadRequest, "No file provided")
		return
	}
	if len(data) > maxAvatarFile {
		writeError(w, http.StatusBadRequest, "File size too large. Please upload files smaller than 5MB.")
		return
	}
	if sniffImage(data) != declared {
		writeError(w, http.StatusBadRequest, badType)
		return
	}
	if i := strings.LastIndex(header.Filename, "."); i >= 0 && extRe.MatchString(header.Filename[i+1:]) {
		ext = strings.ToLower(header.Filename[i+1:])
	}
	ctx := r.Context()
	path := id.AuthUID + "/" + strconv.FormatInt(s.now().UnixMilli(), 10) + "." + ext
	if err := s.supa.Upload(ctx, id.Token, supa.BucketAvatars, path, declared, data); err != nil {
		s.dbFailureFixed(w, r, err, "Failed to upload file")
		return
	}
	url := strings.TrimRight(s.publicURL, "/") + "/storage/v1/object/public/" + supa.BucketAvatars + "/" + path
	err = s.supa.As(id.Token).Update(ctx, "users", map[string]any{"avatar_url": url}, supa.Q("auth_user_id", "eq."+id.AuthUID), nil)
	if err != nil {
		if rerr := s.supa.RemoveObjects(ctx, id.Token, supa.BucketAvatars, []string{path}); rerr != nil {
			s.log.WarnContext(ctx, "avatar: removing object after failed update", "err", rerr)
		}
		s.dbFailureFixed(w, r, err, "Failed to update user profile")
		return
	}
	s.profiles.forget(id.AuthUID)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "avatarUrl": url, "message": "Avatar uploaded successfully"})
}

func (s *Server) removeAvatar(w http.ResponseWriter, r *http.Request) {
	id, ok := s.avatarAuth(w, r)
	if !ok {
		return
	}
	err := s.supa.As(id.Token).Update(r.Context(), "users", map[string]any{"avatar_url": nil}, supa.Q("auth_user_id", "eq."+id.AuthUID), nil)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to remove avatar")
		return
	}
	s.profiles.forget(id.AuthUID)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Avatar removed successfully"})
}

// ---- profile update (routes.md §4.5) ----

var websiteRe = regexp.MustCompile(`(?i)^(https?://)?[a-z0-9.-]+\.[a-z.]{2,6}[a-z0-9_ ./-]*$`)

func (s *Server) updateProfile(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if !ok {
		if reason, present := middleware.AuthFailureFrom(r.Context()); present && reason != middleware.FailNoCredentials {
			writeError(w, http.StatusUnauthorized, "Invalid or expired token")
		} else {
			writeError(w, http.StatusUnauthorized, "Missing or invalid authorization header")
		}
		return
	}
	var body map[string]any
	if !readJSON(w, r, &body) {
		return
	}
	fields := map[string]any{"updated_at": s.now().UTC().Format(time.RFC3339Nano)}
	if v, present := body["bio"]; present {
		bio, isStr := v.(string)
		if truthy(v) && !isStr { // falsy non-strings (null, false, 0) clear the field, as in the original
			writeError(w, http.StatusBadRequest, "Bio must be a string")
			return
		}
		bio = strings.TrimSpace(bio)
		if len([]rune(bio)) > 500 {
			writeError(w, http.StatusBadRequest, "Bio must be 500 characters or less")
			return
		}
		fields["bio"] = nilIfEmpty(bio)
	}
	if v, present := body["website"]; present {
		site, isStr := v.(string)
		if truthy(v) && !isStr {
			writeError(w, http.StatusBadRequest, "Website must be a string")
			return
		}
		site = strings.TrimSpace(site)
		if site != "" && (len(site) > 2048 || !websiteRe.MatchString(site)) {
			writeError(w, http.StatusBadRequest, "Please enter a valid website URL")
			return
		}
		fields["website"] = nilIfEmpty(site)
	}
	var rows []struct {
		ID          string  `json:"id"`
		Username    string  `json:"username"`
		DisplayName string  `json:"display_name"`
		AvatarURL   *string `json:"avatar_url"`
		Bio         *string `json:"bio"`
		Website     *string `json:"website"`
	}
	err := s.supa.As(id.Token).Update(r.Context(), "users", fields, supa.Q("auth_user_id", "eq."+id.AuthUID,
		"select", "id,username,display_name,avatar_url,bio,website"), &rows)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to update profile")
		return
	}
	if len(rows) == 0 {
		writeError(w, http.StatusNotFound, "Profile update failed - user not found or permission denied")
		return
	}
	u := rows[0]
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "user": map[string]any{"id": u.ID, "username": u.Username,
		"displayName": u.DisplayName, "avatarUrl": u.AvatarURL, "bio": u.Bio, "website": u.Website}})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ---- nuclear delete (routes.md §4.6) ----

func (s *Server) nuclearDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if !ok {
		if reason, present := middleware.AuthFailureFrom(r.Context()); present && reason != middleware.FailNoCredentials {
			writeError(w, http.StatusUnauthorized, "Invalid authentication token")
		} else {
			writeError(w, http.StatusUnauthorized, "No authentication found")
		}
		return
	}
	ctx := r.Context()
	row, ok := s.requireOwnRow(w, r, id.Token, "Internal server error", "User not found")
	if !ok {
		return
	}
	var body struct {
		Confirmation any `json:"confirmation"`
	}
	if err := decodeJSON(w, r, &body); errors.Is(err, errBodyTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "Request body too large")
		return
	}
	if c, _ := body.Confirmation.(string); c != "DELETE_ALL_MY_DATA" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Nuclear delete requires explicit confirmation",
			"required_confirmation": "DELETE_ALL_MY_DATA"})
		return
	}
	me, _ := row["id"].(string)
	var summary json.RawMessage
	err := s.supa.As(id.Token).RPC(ctx, "delete_encrypted_data_only",
		map[string]any{"authenticated_user_id": me, "target_user_id": me}, &summary)
	if err != nil {
		var e *supa.Error
		msg := ""
		if errors.As(err, &e) {
			msg = e.Message
		}
		switch {
		case strings.Contains(msg, "Users can only delete their own data"):
			writeError(w, http.StatusForbidden, "Unauthorized: Can only delete own data")
		case strings.Contains(msg, "User must be authenticated"):
			writeError(w, http.StatusUnauthorized, "Authentication required")
		case strings.Contains(msg, "User not found"):
			writeError(w, http.StatusNotFound, "User not found")
		default:
			s.log.ErrorContext(ctx, "nuclear delete failed", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "Encrypted data delete failed",
				"details": "The deletion could not be completed; nothing was deleted"})
		}
		return
	}
	if len(bytes.TrimSpace(summary)) == 0 || string(summary) == "null" {
		writeError(w, http.StatusInternalServerError, "Encrypted data delete returned no result")
		return
	}
	if err := s.hub.LeaveAll(ctx, me); err != nil {
		s.log.WarnContext(ctx, "nuclear delete: leaving rooms failed", "err", err)
	}
	s.removeOwnEncryptedObjects(r, id)
	writeJSON(w, http.StatusOK, map[string]any{
		"success":          true,
		"message":          "All encrypted data has been permanently deleted. Your account remains active.",
		"user_info":        map[string]any{"phone_number": row["phone_number"], "username": row["username"]},
		"deletion_summary": summary,
	})
}

// removeOwnEncryptedObjects deletes every object in the caller's encrypted-files folder (one subfolder per
// conversation). Failures are logged: the file rows are already gone.
func (s *Server) removeOwnEncryptedObjects(r *http.Request, id middleware.Identity) {
	ctx := r.Context()
	folders, err := s.supa.ListObjects(ctx, id.Token, supa.BucketEncryptedFiles, id.AuthUID, "")
	if err != nil {
		s.log.WarnContext(ctx, "nuclear delete: listing storage failed", "err", err)
		return
	}
	for _, f := range folders {
		objs, err := s.supa.ListObjects(ctx, id.Token, supa.BucketEncryptedFiles, id.AuthUID+"/"+f.Name, "")
		if err != nil {
			s.log.WarnContext(ctx, "nuclear delete: listing storage failed", "err", err)
			continue
		}
		paths := make([]string, 0, len(objs))
		for _, o := range objs {
			paths = append(paths, id.AuthUID+"/"+f.Name+"/"+o.Name)
		}
		if err := s.supa.RemoveObjects(ctx, id.Token, supa.BucketEncryptedFiles, paths); err != nil {
			s.log.WarnContext(ctx, "nuclear delete: removing storage objects failed", "err", err)
		}
	}
}
