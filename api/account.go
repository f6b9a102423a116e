package api

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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

// accountRoutes registers the routes of the caller's own account: backup PIN, salt and avatar (whose paths sit under
// /auth/ for history's sake), profile texts and the nuclear delete.
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

// nuclearDeleteOnly answers GET, POST, PUT and PATCH /api/user/nuclear-delete (routes.md §4.6) with the original's
// 405 JSON stub.
func nuclearDeleteOnly(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodDelete)
	methodNotAllowed(w, r)
}

// ---- backup PIN (routes.md §3.1) ----

// GET /api/auth/backup-pin (routes.md §3.1): whether the caller has set a backup PIN; the hash never leaves the
// database.
func (s *Server) getBackupPin(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	row, ok := s.requireOwnRow(w, r, id.Token, "Failed to check backup PIN", "User not found")
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"hasPin": row.HasBackupPin})
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

// POST /api/auth/backup-pin {pin} (routes.md §3.1): stores a slow salted hash of a 6-12 digit PIN.
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
	err = s.supa.As(id.Token).SetBackupPinHash(r.Context(), id.AuthUID, hash)
	s.answerOwnUpdate(w, r, err, "Failed to set backup PIN", map[string]bool{"success": true})
}

// answerOwnUpdate answers the outcome of a change to the caller's users row: ok, 404 "User not found" when there is
// no row, or the route's failure text.
func (s *Server) answerOwnUpdate(w http.ResponseWriter, r *http.Request, err error, failure string, ok any) {
	if err != nil {
		s.fail(w, r, err, failures{internal: failure, fixed: true, refusals: map[error]answer{
			supa.ErrNoProfile: {http.StatusNotFound, "User not found"}}})
		return
	}
	writeJSON(w, http.StatusOK, ok)
}

// ---- salt (routes.md §3.5): only for the caller's own phone number now ----

// GET /api/auth/salt?phone= (routes.md §3.5): the caller's key-derivation salt, for their own number only.
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
	writeJSON(w, http.StatusOK, map[string]any{"salt": row.Salt})
}

// POST /api/auth/salt {phone, salt} (routes.md §3.5): stores the caller's salt unless one is stored already, which
// is answered instead, as the original did.
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
	if row.Salt != nil && *row.Salt != "" {
		writeJSON(w, http.StatusOK, map[string]any{"salt": *row.Salt, "existing": true})
		return
	}
	err := s.supa.As(id.Token).SetSalt(r.Context(), id.AuthUID, salt)
	s.answerOwnUpdate(w, r, err, "Failed to store salt", map[string]any{"salt": salt, "existing": false})
}

// ownRowForPhone returns the caller's row when phone is the caller's own number; it answers 404/403 itself.
func (s *Server) ownRowForPhone(w http.ResponseWriter, r *http.Request, id middleware.Identity, phone string) (supa.OwnRow, bool) {
	row, ok := s.requireOwnRow(w, r, id.Token, "Failed to fetch salt", "User not found")
	if !ok {
		return row, false
	}
	if row.PhoneNumber == nil || *row.PhoneNumber == "" || *row.PhoneNumber != phone {
		writeError(w, http.StatusForbidden, "Forbidden")
		return row, false
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

// POST /api/auth/upload-avatar, multipart "avatar" (routes.md §3.8): stores the image in the public avatars bucket
// under the caller's folder and points their profile at it.
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
		s.fail(w, r, err, failures{internal: "Failed to upload file", fixed: true})
		return
	}
	url := strings.TrimRight(s.publicURL, "/") + "/storage/v1/object/public/" + supa.BucketAvatars + "/" + path
	if err := s.supa.As(id.Token).SetAvatarURL(ctx, id.AuthUID, &url); err != nil {
		if rerr := s.supa.RemoveObjects(ctx, id.Token, supa.BucketAvatars, []string{path}); rerr != nil {
			s.log.WarnContext(ctx, "avatar: removing object after failed update", "err", rerr)
		}
		s.fail(w, r, err, failures{internal: "Failed to update user profile", fixed: true})
		return
	}
	s.profiles.forget(id.AuthUID)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "avatarUrl": url, "message": "Avatar uploaded successfully"})
}

// DELETE /api/auth/upload-avatar (routes.md §3.8): clears the caller's avatar_url (the object stays, as in the
// original).
func (s *Server) removeAvatar(w http.ResponseWriter, r *http.Request) {
	id, ok := s.avatarAuth(w, r)
	if !ok {
		return
	}
	if err := s.supa.As(id.Token).SetAvatarURL(r.Context(), id.AuthUID, nil); err != nil {
		s.fail(w, r, err, failures{internal: "Failed to remove avatar", fixed: true})
		return
	}
	s.profiles.forget(id.AuthUID)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Avatar removed successfully"})
}

// ---- profile update (routes.md §4.5) ----

var websiteRe = regexp.MustCompile(`(?i)^(https?://)?[a-z0-9.-]+\.[a-z.]{2,6}[a-z0-9_ ./-]*$`)

// POST /api/profile/update {bio?, website?} (routes.md §4.5): edits the caller's profile texts and answers the row.
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
	changes := supa.ProfileChanges{UpdatedAt: s.now().UTC().Format(time.RFC3339Nano)}
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
		changes.Bio = &bio
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
		changes.Website = &site
	}
	u, err := s.supa.As(id.Token).UpdateProfile(r.Context(), id.AuthUID, changes)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to update profile", fixed: true, refusals: map[error]answer{
			supa.ErrNoProfile: {http.StatusNotFound, "Profile update failed - user not found or permission denied"}}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "user": map[string]any{"id": u.ID, "username": u.Username,
		"displayName": u.DisplayName, "avatarUrl": u.AvatarURL, "bio": u.Bio, "website": u.Website}})
}

// ---- nuclear delete (routes.md §4.6) ----

// DELETE /api/user/nuclear-delete {confirmation: "DELETE_ALL_MY_DATA"} (routes.md §4.6): deletes every piece of the
// caller's encrypted data (messages, files, keys, participations) and keeps the account; the caller leaves every
// event room and their encrypted-files objects are removed.
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
	me := row.ID
	summary, err := s.supa.As(id.Token).DeleteEncryptedData(ctx, me)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Encrypted data delete failed", fixed: true,
			details: "The deletion could not be completed; nothing was deleted", refusals: map[error]answer{
				supa.ErrDeleteOthersData:    {http.StatusForbidden, "Unauthorized: Can only delete own data"},
				supa.ErrDeleteUnauthorized:  {http.StatusUnauthorized, "Authentication required"},
				supa.ErrDeleteUserNotFound:  {http.StatusNotFound, "User not found"},
				supa.ErrDeleteReturnedEmpty: {http.StatusInternalServerError, "Encrypted data delete returned no result"},
			}})
		return
	}
	if err := s.hub.LeaveAll(ctx, me); err != nil {
		s.log.WarnContext(ctx, "nuclear delete: leaving rooms failed", "err", err)
	}
	s.removeOwnEncryptedObjects(r, id)
	writeJSON(w, http.StatusOK, map[string]any{
		"success":          true,
		"message":          "All encrypted data has been permanently deleted. Your account remains active.",
		"user_info":        map[string]any{"phone_number": row.PhoneNumber, "username": row.Username},
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
