package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
)

const noteToSelfArchive = "Cannot archive or modify note-to-self conversations"

// archiveOutcome runs archive_conversation / unarchive_conversation for the caller's own auth uid and says which
// answer the route gives: 0 = done, else an HTTP status with its text.
func (s *Server) archive(ctx context.Context, id middleware.Identity, convID string, archive bool) (int, string, error) {
	verb, fn := "archive", "archive_conversation"
	if !archive {
		verb, fn = "unarchive", "unarchive_conversation"
	}
	rest := s.supa.As(id.Token)
	conv, err := rest.Conversation(ctx, convID)
	if supa.IsNotFound(err) {
		return http.StatusNotFound, "Conversation not found or cannot be " + verb + "d", nil
	}
	if err != nil {
		return 0, "Failed to " + verb + " conversation", err
	}
	if conv.Type == "note_to_self" {
		return http.StatusForbidden, noteToSelfArchive, nil
	}
	var changed bool
	if err := rest.RPC(ctx, fn, map[string]any{"conversation_uuid": convID, "user_uuid": id.AuthUID}, &changed); err != nil {
		return 0, "Failed to " + verb + " conversation", err
	}
	if !changed {
		return http.StatusNotFound, "Conversation not found or cannot be " + verb + "d", nil
	}
	return http.StatusOK, "", nil
}

// POST /api/conversations/archive and /unarchive (routes.md §6.7).
func (s *Server) archiveRoute(archive bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.requireUser(w, r, "Unauthorized")
		if !ok {
			return
		}
		var body conversationBody
		if !readJSON(w, r, &body) {
			return
		}
		convID, ok := conversationID(w, body.ConversationID)
		if !ok {
			return
		}
		status, msg, err := s.archive(r.Context(), id, convID, archive)
		switch {
		case err != nil:
			s.dbFailureFixed(w, r, err, msg)
		case status != http.StatusOK:
			writeError(w, status, msg)
		default:
			writeJSON(w, http.StatusOK, map[string]bool{"success": true})
		}
	}
}

// PATCH /api/chat/conversations (routes.md §7.1).
func (s *Server) patchConversation(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body struct {
		ConversationID any `json:"conversation_id"`
		Action         any `json:"action"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	convID, _ := body.ConversationID.(string)
	if convID == "" {
		writeError(w, http.StatusBadRequest, "conversation_id is required")
		return
	}
	if !isUUID(convID) {
		writeError(w, http.StatusBadRequest, "Invalid conversation_id")
		return
	}
	action, _ := body.Action.(string)
	if action != "archive" && action != "unarchive" {
		writeError(w, http.StatusBadRequest, `action must be "archive" or "unarchive"`)
		return
	}
	status, msg, err := s.archive(r.Context(), id, convID, action == "archive")
	switch {
	case err != nil:
		s.dbFailureFixed(w, r, err, msg)
	case status != http.StatusOK:
		writeError(w, status, msg)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Conversation " + action + "d successfully"})
	}
}

// POST /api/conversations/delete (routes.md §6.8): a direct chat is wiped for both people; a group or room is left,
// with the caller's own messages. One RPC does it atomically; the Storage objects of removed files follow.
func (s *Server) deleteConversation(w http.ResponseWriter, r *http.Request) {
	c, ok := s.conversationCall(w, r)
	if !ok {
		return
	}
	id, p, convID := c.id, c.me, c.conv
	ctx := r.Context()
	var out struct {
		Scope           string   `json:"scope"`
		StoragePaths    []string `json:"storage_paths"`
		Participants    []string `json:"participants"`
		DeletedMessages int      `json:"deleted_messages"`
	}
	err := s.supa.As(id.Token).RPC(ctx, "api_delete_conversation", map[string]any{"p_conversation_id": convID}, &out)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to delete conversation", fixed: true, refusals: map[error]answer{
			supa.ErrNotParticipant:       {http.StatusNotFound, "Conversation not found or you are not a participant"},
			supa.ErrConversationNotFound: {http.StatusNotFound, "Conversation not found or you are not a participant"},
			supa.ErrNoteToSelf:           {http.StatusForbidden, "Cannot delete note-to-self conversations"},
		}})
		return
	}
	if out.Scope == "all" {
		if err := s.hub.CloseRoom(ctx, convID); err != nil {
			s.log.WarnContext(ctx, "delete: closing room failed", "conversation", convID, "err", err)
		}
	} else if err := s.hub.Leave(ctx, convID, p.ID); err != nil {
		s.log.WarnContext(ctx, "delete: leaving room failed", "conversation", convID, "err", err)
	}
	s.removeConversationObjects(ctx, id, convID, out.Scope, out.StoragePaths)
	s.emitConversationMessagesDeleted(id.Token, convID, p.ID, out.Scope, out.DeletedMessages, out.Participants)
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// POST /api/chat/conversations/{id}/mark-read (routes.md §7.2).
func (s *Server) markRead(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	convID := chi.URLParam(r, "id")
	if !isUUID(convID) {
		writeError(w, http.StatusBadRequest, "Invalid conversation id")
		return
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	if !ok {
		return
	}
	var newest *string
	err := s.supa.As(id.Token).RPC(r.Context(), "api_mark_conversation_read", map[string]any{"p_conversation_id": convID}, &newest)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to mark messages as read", fixed: true, refusals: map[error]answer{
			supa.ErrNotParticipant: {http.StatusForbidden, "Access denied to conversation"},
		}})
		return
	}
	if newest != nil {
		// A read receipt for the other members' streams; this frontend ignores the event name, others may use it.
		ev := relay.MessageReadEvent(p.ID, convID, *newest)
		if err := s.hub.PublishToRoom(r.Context(), convID, ev, relay.PublishOptions{ExcludeUser: p.ID}); err != nil {
			s.log.WarnContext(r.Context(), "mark-read: publish failed", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Messages marked as read"})
}

// GET /api/chat/conversations/{id}/participants (routes.md §7.3).
func (s *Server) listParticipants(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	convID := chi.URLParam(r, "id")
	if !isUUID(convID) {
		writeError(w, http.StatusBadRequest, "Invalid conversation id")
		return
	}
	p, err := s.profileOf(r.Context(), id)
	if errors.Is(err, errNoProfile) {
		// The original answered every failure of its caller lookup, the profile included, with 401 (routes.md §7.3).
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to fetch participants")
		return
	}
	rest := s.supa.As(id.Token)
	var rows []json.RawMessage
	err = rest.Select(r.Context(), "conversation_participants", supa.Q(
		"select", "user_id,role,joined_at,user:users!conversation_participants_user_id_fkey(id,username,display_name,avatar_url)",
		"conversation_id", "eq."+convID, "left_at", "is.null", "order", "joined_at.asc"), &rows)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to fetch participants")
		return
	}
	member := false
	for _, raw := range rows {
		var row struct {
			UserID string `json:"user_id"`
		}
		if json.Unmarshal(raw, &row) == nil && row.UserID == p.ID {
			member = true
		}
	}
	if !member {
		writeError(w, http.StatusForbidden, "Not authorized to view participants in this conversation")
		return
	}
	if rows == nil {
		rows = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "participants": rows, "conversation_id": convID})
}

// POST /api/chat/conversations/{id}/participants (routes.md §7.3; missing in the original).
func (s *Server) addParticipants(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	convID := chi.URLParam(r, "id")
	if !isUUID(convID) {
		writeError(w, http.StatusBadRequest, "Invalid conversation id")
		return
	}
	var body struct {
		UserIDs any `json:"user_ids"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if arr, isArr := body.UserIDs.([]any); !isArr || len(arr) == 0 {
		writeError(w, http.StatusBadRequest, "user_ids is required and must be a non-empty array")
		return
	}
	ids, ok := uuidList(body.UserIDs)
	if !ok {
		writeError(w, http.StatusBadRequest, "Invalid user_ids")
		return
	}
	if _, ok := s.requireProfile(w, r, id, "User not found"); !ok {
		return
	}
	var out struct {
		Added        []string        `json:"added"`
		Conversation json.RawMessage `json:"conversation"`
	}
	err := s.supa.As(id.Token).RPC(r.Context(), "api_add_participants",
		map[string]any{"p_conversation_id": convID, "p_user_ids": ids}, &out)
	var e *supa.Error
	if errors.As(err, &e) {
		switch e.Message {
		case "conversation_not_found":
			writeError(w, http.StatusNotFound, "Conversation not found")
			return
		case "not_participant":
			writeError(w, http.StatusForbidden, "You are not a participant in this conversation")
			return
		case "note_to_self":
			writeError(w, http.StatusForbidden, "Cannot add participants to note-to-self conversations")
			return
		case "invalid_user_ids":
			writeError(w, http.StatusBadRequest, "Invalid user_ids")
			return
		}
	}
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to add participants")
		return
	}
	if len(out.Added) == 0 {
		writeJSON(w, http.StatusOK, map[string]string{"message": "All users are already participants"})
		return
	}
	s.announceConversation(r.Context(), supa.ConversationRow{ID: convID, Raw: out.Conversation}, out.Added)
	writeJSON(w, http.StatusOK, map[string]any{
		"message":             "Successfully added " + itoa(len(out.Added)) + " participant(s)",
		"added_count":         len(out.Added),
		"new_participant_ids": out.Added,
	})
}

// removeConversationObjects deletes the Storage objects of file rows a conversation delete removed (the original
// left them behind). Failures are logged: the rows are gone, so the objects are unreachable orphans at worst.
func (s *Server) removeConversationObjects(ctx context.Context, id middleware.Identity, convID, scope string, paths []string) {
	if len(paths) == 0 {
		return
	}
	var err error
	if scope == "all" {
		err = s.supa.RemoveWipedConversationObjects(ctx, convID, paths)
	} else {
		err = s.supa.RemoveObjects(ctx, id.Token, supa.BucketEncryptedFiles, paths)
	}
	if err != nil {
		s.log.WarnContext(ctx, "delete: removing storage objects failed", "conversation", convID, "count", len(paths), "err", err)
	}
}
