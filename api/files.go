package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
)

func (s *Server) fileRoutes(r chi.Router) {
	r.Post("/files/upload-url", s.uploadURL)
	r.Post("/files/upload-complete", s.uploadComplete)
	r.Get("/files/message/{messageId}", s.filesOfMessage)
	r.Get("/files/{fileId}/encrypted", s.encryptedFile)
	r.Get("/files/{fileId}", s.fileDecrypt)
	r.Head("/files/{fileId}", s.fileHead)
	r.Post("/files/{fileId}", s.fileInfo)
	r.Post("/files/upload", s.fileUploadDeprecated)
	r.Post("/files/debug-upload", notFound)
	// Without these, GET on the POST-only paths would fall through to GET /files/{fileId} (chi prefers the
	// parameter route over a 405 of the static one) and answer 501 as if "upload-url" were a file id.
	for _, p := range []string{"/files/upload-url", "/files/upload-complete", "/files/upload"} {
		r.Get(p, postOnly)
	}
}

// postOnly is the 405 of the POST-only files paths (routes.md §8): the original answered other methods so.
func postOnly(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	methodNotAllowed(w, r)
}

// maxEncryptedObject is the largest encrypted file served inline as JSON (routes.md §8.4).
const maxEncryptedObject = 64 << 20

// fileCaller authenticates a files route and finds the caller's profile, answering with the files routes' body
// shape ({"error","message"}) itself.
func (s *Server) fileCaller(w http.ResponseWriter, r *http.Request) (middleware.Identity, profile, bool) {
	id, ok := identity(r)
	if !ok {
		writeFileError(w, http.StatusUnauthorized, "Unauthorized")
		return id, profile{}, false
	}
	p, err := s.profileOf(r.Context(), id)
	if errors.Is(err, supa.ErrNoProfile) {
		writeFileError(w, http.StatusNotFound, "User profile not found")
		return id, p, false
	}
	if err != nil {
		s.fileDBFailure(w, r, err, "Internal server error")
		return id, p, false
	}
	return id, p, true
}

// fileDBFailure answers a failed Supabase call on a files route: 502/504 when Supabase could not be reached, else
// 500 with the route's text, in the files body shape (routes.md §8).
func (s *Server) fileDBFailure(w http.ResponseWriter, r *http.Request, err error, msg string) {
	s.fail(w, r, err, failures{internal: msg, fixed: true, files: true})
}

// readFileJSON decodes a files route body, answering 413/400 in the files shape.
func readFileJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	switch err := decodeJSON(w, r, dst); {
	case err == nil:
		return true
	case errors.Is(err, errBodyTooLarge):
		writeFileError(w, http.StatusRequestEntityTooLarge, "Request body too large")
	default:
		writeFileError(w, http.StatusBadRequest, "Invalid JSON")
	}
	return false
}

// uploadTarget checks that the caller is an active participant of convID (else 403 forbidden) and sent msgID in
// it (else 404), answering itself when not; internal is the route's text for a failed lookup.
func (s *Server) uploadTarget(w http.ResponseWriter, r *http.Request, token, me, convID, msgID, forbidden, internal string) bool {
	rest := s.supa.As(token)
	active, err := rest.IsActiveParticipant(r.Context(), convID, me)
	if err != nil {
		s.fileDBFailure(w, r, err, internal)
		return false
	}
	if !active {
		writeFileError(w, http.StatusForbidden, forbidden)
		return false
	}
	own, err := rest.IsMessageSender(r.Context(), msgID, convID, me)
	if err != nil {
		s.fileDBFailure(w, r, err, internal)
		return false
	}
	if !own {
		writeFileError(w, http.StatusNotFound, "Message not found or unauthorized")
		return false
	}
	return true
}

// newFileID makes the original's file id: file_<epoch ms>_<13 hex digits>.
func newFileID(now time.Time) string {
	var b [7]byte
	_, _ = rand.Read(b[:])
	return "file_" + strconv.FormatInt(now.UnixMilli(), 10) + "_" + hex.EncodeToString(b[:])[:13]
}

// POST /api/files/upload-url (routes.md §8.1): a signed upload URL for the caller's own folder of the conversation.
func (s *Server) uploadURL(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if !ok {
		writeFileError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	var body struct {
		ConversationID    any             `json:"conversationId"`
		MessageID         any             `json:"messageId"`
		EncryptedMetadata json.RawMessage `json:"encryptedMetadata"`
	}
	if !readFileJSON(w, r, &body) {
		return
	}
	convID, _ := body.ConversationID.(string)
	msgID, _ := body.MessageID.(string)
	if !isUUID(convID) || !isUUID(msgID) || len(body.EncryptedMetadata) == 0 || string(body.EncryptedMetadata) == "null" {
		writeFileError(w, http.StatusBadRequest, "Missing required fields")
		return
	}
	var meta map[string]any
	if json.Unmarshal(body.EncryptedMetadata, &meta) != nil || len(meta) == 0 {
		writeFileError(w, http.StatusBadRequest, "Invalid encrypted metadata")
		return
	}
	_, p, ok := s.fileCaller(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	if !s.uploadTarget(w, r, id.Token, p.ID, convID, msgID,
		"Not authorized to upload files to this conversation", "Internal server error during signed URL generation") {
		return
	}
	fileID := newFileID(s.now())
	path := id.AuthUID + "/" + convID + "/" + fileID
	signed, err := s.supa.CreateSignedUploadURL(ctx, id.Token, supa.BucketEncryptedFiles, path, s.publicURL)
	if err != nil {
		s.fileDBFailure(w, r, err, "Failed to create upload URL")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true, "uploadUrl": signed.URL, "storagePath": path, "fileId": fileID, "token": signed.Token,
		"metadata": map[string]string{"messageId": msgID, "conversationId": convID},
	})
}

// POST /api/files/upload-complete (routes.md §8.2): records the uploaded object as a file of the caller's message
// and tells the room. The path must lie in the caller's own folder of that conversation: the original let a caller
// attach (and so read) another user's object.
func (s *Server) uploadComplete(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if !ok {
		writeFileError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	var body struct {
		StoragePath any `json:"storagePath"`
		FileID      any `json:"fileId"`
		Metadata    *struct {
			MessageID         any             `json:"messageId"`
			ConversationID    any             `json:"conversationId"`
			EncryptedMetadata json.RawMessage `json:"encryptedMetadata"`
		} `json:"metadata"`
	}
	if !readFileJSON(w, r, &body) {
		return
	}
	path, _ := body.StoragePath.(string)
	fileID, _ := body.FileID.(string)
	if path == "" || fileID == "" || body.Metadata == nil {
		writeFileError(w, http.StatusBadRequest, "Missing required fields")
		return
	}
	msgID, _ := body.Metadata.MessageID.(string)
	convID, _ := body.Metadata.ConversationID.(string)
	var meta map[string]any
	if !isUUID(msgID) || !isUUID(convID) || json.Unmarshal(body.Metadata.EncryptedMetadata, &meta) != nil || len(meta) == 0 {
		writeFileError(w, http.StatusBadRequest, "Missing metadata fields")
		return
	}
	_, p, ok := s.fileCaller(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	rest := s.supa.As(id.Token)
	if !s.uploadTarget(w, r, id.Token, p.ID, convID, msgID,
		"Not authorized to complete upload for this conversation", "Internal server error during upload completion") {
		return
	}
	folder := id.AuthUID + "/" + convID
	if path != folder+"/"+fileID || strings.ContainsAny(fileID, "/\\") || strings.Contains(fileID, "..") {
		writeFileError(w, http.StatusForbidden, "Invalid storage path")
		return
	}
	objects, err := s.supa.ListObjects(ctx, id.Token, supa.BucketEncryptedFiles, folder, fileID)
	if err != nil {
		s.fileDBFailure(w, r, err, "Internal server error during upload completion")
		return
	}
	found := false
	for _, o := range objects {
		found = found || o.Name == fileID
	}
	if !found {
		writeFileError(w, http.StatusNotFound, "File not found in storage - upload may have failed")
		return
	}
	file, err := rest.RecordFile(ctx, supa.NewFile{MessageID: msgID, StoragePath: path,
		EncryptedMetadata: body.Metadata.EncryptedMetadata, CreatedBy: id.AuthUID})
	if err != nil {
		if rerr := s.supa.RemoveObjects(ctx, id.Token, supa.BucketEncryptedFiles, []string{path}); rerr != nil {
			s.log.WarnContext(ctx, "upload-complete: removing object after failed insert", "err", rerr)
		}
		s.fileDBFailure(w, r, err, "Failed to save file metadata")
		return
	}
	members, err := rest.ActiveParticipantIDs(ctx, convID)
	if err != nil {
		members = nil
	}
	ev := relay.NewMessageShortEvent(msgID, convID)
	if err := s.hub.PublishToRoom(ctx, convID, ev, relay.PublishOptions{Participants: members}); err != nil {
		s.log.WarnContext(ctx, "upload-complete: publish failed", "err", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true,
		"file": map[string]string{"id": file.ID, "messageId": msgID, "createdAt": file.CreatedAt}})
}

// visibleFile reads one file row the caller may see: its message's conversation must have the caller as a
// participant. Row-level security enforces the same; this check does not depend on it.
func (s *Server) visibleFile(ctx context.Context, rest supa.Rest, fileID, me string) (*supa.FileRow, error) {
	if !isUUID(fileID) {
		return nil, nil
	}
	f, err := rest.File(ctx, fileID)
	if err != nil || f == nil {
		return nil, err
	}
	p, err := rest.Participant(ctx, f.Message.ConversationID, me)
	if err != nil || p == nil {
		return nil, err
	}
	return f, nil
}

// requireVisibleFile authenticates a files route and reads the {fileId} row the caller may see, answering 401, 404
// ("File not found or unauthorized") and failures itself.
func (s *Server) requireVisibleFile(w http.ResponseWriter, r *http.Request) (middleware.Identity, *supa.FileRow, bool) {
	id, p, ok := s.fileCaller(w, r)
	if !ok {
		return id, nil, false
	}
	f, err := s.visibleFile(r.Context(), s.supa.As(id.Token), chi.URLParam(r, "fileId"), p.ID)
	if err != nil {
		s.fileDBFailure(w, r, err, "Internal server error")
		return id, nil, false
	}
	if f == nil {
		writeFileError(w, http.StatusNotFound, "File not found or unauthorized")
		return id, nil, false
	}
	return id, f, true
}

// GET /api/files/message/{messageId} (routes.md §8.3).
func (s *Server) filesOfMessage(w http.ResponseWriter, r *http.Request) {
	id, p, ok := s.fileCaller(w, r)
	if !ok {
		return
	}
	msgID := chi.URLParam(r, "messageId")
	if !isUUID(msgID) {
		writeJSON(w, http.StatusOK, map[string]any{"files": []any{}})
		return
	}
	ctx := r.Context()
	rest := s.supa.As(id.Token)
	rows, err := rest.FilesOfMessage(ctx, msgID)
	if err != nil {
		s.fileDBFailure(w, r, err, "Failed to fetch files")
		return
	}
	files := []map[string]any{}
	if len(rows) > 0 && rows[0].Message != nil {
		part, err := rest.Participant(ctx, rows[0].Message.ConversationID, p.ID)
		if err != nil {
			s.fileDBFailure(w, r, err, "Failed to fetch files")
			return
		}
		if part != nil {
			for _, f := range rows {
				files = append(files, map[string]any{"id": f.ID, "messageId": f.MessageID,
					"encryptedMetadata": f.EncryptedMetadata, "createdAt": f.CreatedAt, "createdBy": f.CreatedBy,
					"isOwner": f.CreatedBy == id.AuthUID})
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"files": files})
}

// GET /api/files/{fileId}/encrypted (routes.md §8.4): the stored ciphertext JSON as a string.
func (s *Server) encryptedFile(w http.ResponseWriter, r *http.Request) {
	id, f, ok := s.requireVisibleFile(w, r)
	if !ok {
		return
	}
	data, err := s.supa.Download(r.Context(), id.Token, supa.BucketEncryptedFiles, f.StoragePath, maxEncryptedObject)
	if errors.Is(err, supa.ErrObjectTooLarge) {
		writeFileError(w, http.StatusRequestEntityTooLarge, "File is too large to be served inline")
		return
	}
	if err != nil {
		s.fileDBFailure(w, r, err, "Failed to download file from storage")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "file": map[string]any{
		"id": f.ID, "messageId": f.MessageID, "encryptedContents": string(data), "encryptedMetadata": f.EncryptedMetadata}})
}

// GET /api/files/{fileId} (routes.md §8.5): the server holds no private keys, so it cannot decrypt.
func (s *Server) fileDecrypt(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := s.fileCaller(w, r); !ok {
		return
	}
	writeFileError(w, http.StatusNotImplemented, "Server-side decryption is not supported")
}

// HEAD /api/files/{fileId} (routes.md §8.5): the headers of a download, without a body.
func (s *Server) fileHead(w http.ResponseWriter, r *http.Request) {
	_, f, ok := s.requireVisibleFile(w, r)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="encrypted-file"`)
	if t, err := time.Parse(time.RFC3339Nano, f.CreatedAt); err == nil {
		h.Set("Last-Modified", t.UTC().Format(http.TimeFormat))
	}
	w.WriteHeader(http.StatusOK)
}

// POST /api/files/{fileId} (routes.md §8.5): the file's details.
func (s *Server) fileInfo(w http.ResponseWriter, r *http.Request) {
	id, f, ok := s.requireVisibleFile(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": f.ID, "messageId": f.MessageID,
		"conversationId": f.Message.ConversationID, "encryptedMetadata": f.EncryptedMetadata,
		"createdAt": f.CreatedAt, "createdBy": f.CreatedBy, "isOwner": f.CreatedBy == id.AuthUID})
}

// POST /api/files/upload (routes.md §8.6): deprecated; uploads nothing (the original stored the object and then
// failed).
func (s *Server) fileUploadDeprecated(w http.ResponseWriter, r *http.Request) {
	if _, ok := identity(r); !ok {
		writeFileError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	writeFileError(w, http.StatusNotImplemented, "This upload method is deprecated. Use /api/files/upload-url for E2E encrypted uploads.")
}
