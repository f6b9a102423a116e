package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
)

// conversationActionRoutes registers what is done to an existing conversation: archive, delete, mark read and
// its participants (routes.md §6.7, §6.8, §7.1 PATCH, §7.2, §7.3).
func (s *Server) conversationActionRoutes(r chi.Router) {
	r.Post("/conversations/archive", s.archiveRoute(true))
	r.Post("/conversations/unarchive", s.archiveRoute(false))
	r.Post("/conversations/delete", s.deleteConversation)
	r.Patch("/chat/conversations", s.patchConversation)
	r.Post("/chat/conversations/{id}/mark-read", s.markRead)
	r.Get("/chat/conversations/{id}/participants", s.listParticipants)
	r.Post("/chat/conversations/{id}/participants", s.addParticipants)
}

const noteToSelfArchive = "Cannot archive or modify note-to-self conversations"

// archive archives (or unarchives) the conversation for the caller's own auth uid and says which answer the route
// gives: http.StatusOK when done, else an HTTP status with its text; with an error, the text is the route's 500.
func (s *Server) archive(ctx context.Context, id middleware.Identity, convID string, archive bool) (int, string, error) {
	verb := "archive"
	if !archive {
		verb = "unarchive"
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
	changed, err := rest.SetArchived(ctx, convID, id.AuthUID, archive)
	if err != nil {
		return 0, "Failed to " + verb + " conversation", err
	}
	if !changed {
		return http.StatusNotFound, "Conversation not found or cannot be " + verb + "d", nil
	}
	return http.StatusOK, "", nil
}

// POST /api/conversations/archive and /api/conversations/unarchive (routes.md §6.7): archives or unarchives the
// conversation for the caller only.
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
			s.fail(w, r, err, failures{internal: msg, fixed: true})
		case status != http.StatusOK:
			writeError(w, status, msg)
		default:
			writeJSON(w, http.StatusOK, map[string]bool{"success": true})
		}
	}
}

// PATCH /api/chat/conversations {conversation_id, action} (routes.md §7.1): archive or unarchive, as §6.7.
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
		s.fail(w, r, err, failures{internal: msg, fixed: true})
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
	out, err := s.supa.As(id.Token).DeleteConversation(ctx, convID)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to delete conversation", fixed: true, refusals: map[error]answer{
			supa.ErrNotParticipant:       {http.StatusNotFound, "Conversation not found or you are not a participant"},
			supa.ErrConversationNotFound: {http.StatusNotFound, "Conversation not found or you are not a participant"},
			supa.ErrNoteToSelf:           {http.StatusForbidden, "Cannot delete note-to-self conversations"},
		}})
		return
	}
	if out.Scope == supa.DeletedForAll {
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

// POST /api/chat/conversations/{id}/mark-read (routes.md §7.2): marks the caller's deliveries of the conversation
// read and sends the other members a read receipt.
func (s *Server) markRead(w http.ResponseWriter, r *http.Request) {
	id, convID, ok := s.conversationInPath(w, r)
	if !ok {
		return
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	if !ok {
		return
	}
	newest, err := s.supa.As(id.Token).MarkConversationRead(r.Context(), convID)
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

// GET /api/chat/conversations/{id}/participants (routes.md §7.3): the active members with their profiles, for
// active participants only; their user_id values become the keys of the browser's encryptedContents.
func (s *Server) listParticipants(w http.ResponseWriter, r *http.Request) {
	id, convID, ok := s.conversationInPath(w, r)
	if !ok {
		return
	}
	p, err := s.profileOf(r.Context(), id)
	if errors.Is(err, supa.ErrNoProfile) {
		// The original answered every failure of its caller lookup, the profile included, with 401 (routes.md §7.3).
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	fails := failures{internal: "Failed to fetch participants", fixed: true}
	if err != nil {
		s.fail(w, r, err, fails)
		return
	}
	rows, err := s.supa.As(id.Token).ActiveParticipants(r.Context(), convID)
	if err != nil {
		s.fail(w, r, err, fails)
		return
	}
	member := false
	for _, row := range rows {
		member = member || row.UserID == p.ID
	}
	if !member {
		writeError(w, http.StatusForbidden, "Not authorized to view participants in this conversation")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "participants": rows, "conversation_id": convID})
}

// POST /api/chat/conversations/{id}/participants {user_ids} (routes.md §7.3; missing in the original): adds members
// and sends each added user CONVERSATION_CREATED.
func (s *Server) addParticipants(w http.ResponseWriter, r *http.Request) {
	id, convID, ok := s.conversationInPath(w, r)
	if !ok {
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
	out, err := s.supa.As(id.Token).AddParticipants(r.Context(), convID, ids)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to add participants", fixed: true, refusals: map[error]answer{
			supa.ErrConversationNotFound: {http.StatusNotFound, "Conversation not found"},
			supa.ErrNotParticipant:       {http.StatusForbidden, "You are not a participant in this conversation"},
			supa.ErrNoteToSelf:           {http.StatusForbidden, "Cannot add participants to note-to-self conversations"},
			supa.ErrInvalidUserIDs:       {http.StatusBadRequest, "Invalid user_ids"},
		}})
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

// conversationInPath authenticates a /chat/conversations/{id}/… route and reads its {id}, answering 401 or 400
// itself (routes.md §7.2–7.4); false means it has answered.
func (s *Server) conversationInPath(w http.ResponseWriter, r *http.Request) (middleware.Identity, string, bool) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return id, "", false
	}
	convID := chi.URLParam(r, "id")
	if !isUUID(convID) {
		writeError(w, http.StatusBadRequest, "Invalid conversation id")
		return id, "", false
	}
	return id, convID, true
}
