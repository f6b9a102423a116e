package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
)

// The /api/chat/messages routes have no browser caller; the original's were unreachable (legacy cookies). They are
// implemented as intended (routes.md §7.5, §7.6) on the same atomic send path as messages/send.

// The 401 texts of the original's legacy-cookie check, shared by §6.10, §6.11 and §7.5.
const (
	legacyNoAuth  = "No authentication tokens found"
	legacyBadAuth = "Invalid authentication token"
)

// chatMessageRoutes registers the /api/chat/messages routes (routes.md §7.5, §7.6).
func (s *Server) chatMessageRoutes(r chi.Router) {
	r.Get("/chat/messages", s.chatMessagesList)
	r.Post("/chat/messages", s.chatMessagesSend)
	r.Patch("/chat/messages", s.chatMessagesMarkRead)
	r.Get("/chat/messages/{id}", s.chatMessageGet)
}

// POST /api/chat/messages (routes.md §7.5): sends a message on the same atomic path as messages/send and announces
// it with NEW_MESSAGE; the answer carries the row's identifiers only.
func (s *Server) chatMessagesSend(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUserWith(w, r, legacyNoAuth, legacyBadAuth)
	if !ok {
		return
	}
	var body struct {
		ConversationID    any `json:"conversation_id"`
		EncryptedContents any `json:"encrypted_contents"`
		ContentType       any `json:"content_type"`
		HasAttachments    any `json:"has_attachments"`
		ReplyToID         any `json:"reply_to_id"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	convID, _ := body.ConversationID.(string)
	if convID == "" || jsFalsy(body.EncryptedContents) {
		writeError(w, http.StatusBadRequest, "Missing required fields: conversation_id, encrypted_contents")
		return
	}
	if !isUUID(convID) {
		writeError(w, http.StatusBadRequest, "Invalid conversation_id")
		return
	}
	const badObj = "encrypted_contents must be an object with user_id -> encrypted_content mappings"
	contents, problem := s.msgLimits.recipientContents(body.EncryptedContents)
	if s.msgLimits.contentsAnswered(w, problem, "encrypted_contents", badObj) {
		return
	}
	contentType := "text"
	if body.ContentType != nil {
		ct, isStr := body.ContentType.(string)
		if !isStr || ct == "" || len(ct) > 50 {
			writeError(w, http.StatusBadRequest, "Invalid content_type")
			return
		}
		contentType = ct
	}
	hasAttachments, _ := body.HasAttachments.(bool)
	var replyTo *string
	if body.ReplyToID != nil {
		rid, _ := body.ReplyToID.(string)
		if !isUUID(rid) {
			writeError(w, http.StatusBadRequest, "Invalid reply_to_id")
			return
		}
		replyTo = &rid
	}
	if _, ok := s.requireProfile(w, r, id, "User not found"); !ok {
		return
	}
	ctx := r.Context()
	announce := func(ctx context.Context, sent supa.SentMessage) {
		ev := relay.NewMessageEvent(sent.Message)
		if err := s.hub.PublishToRoom(ctx, convID, ev, relay.PublishOptions{Participants: sent.Participants}); err != nil {
			s.log.WarnContext(ctx, "chat/messages: publish failed", "err", err)
		}
	}
	sent, err := s.storeMessage(ctx, id.Token, supa.NewMessage{ConversationID: convID, Contents: contents,
		ContentType: contentType, HasAttachments: hasAttachments, ReplyToID: replyTo}, announce)
	if err != nil {
		s.failSend(w, r, err, failures{internal: "Failed to create message", fixed: true, refusals: withSendFailures(map[error]answer{
			supa.ErrNotParticipant:         {http.StatusForbidden, "Not authorized to send messages in this conversation"},
			supa.ErrNoRecipients:           {http.StatusBadRequest, "No recipient is an active participant of this conversation"},
			supa.ErrReplyNotInConversation: {http.StatusBadRequest, "reply_to_id must be a message of this conversation"},
		})})
		return
	}
	announce(context.WithoutCancel(ctx), sent) // the message is stored: announce it even if the sender has left
	var m map[string]json.RawMessage
	_ = json.Unmarshal(sent.Message, &m)
	out := map[string]json.RawMessage{}
	for _, k := range []string{"id", "conversation_id", "sender_id", "content_type", "has_attachments", "created_at", "reply_to_id"} {
		out[k] = m[k]
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": out})
}

// GET /api/chat/messages?conversation_id=&limit=&offset= (routes.md §7.5): the caller's delivered, unexpired
// messages of a conversation, oldest first, with their delivery and expiry state.
func (s *Server) chatMessagesList(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUserWith(w, r, legacyNoAuth, legacyBadAuth)
	if !ok {
		return
	}
	q := r.URL.Query()
	convID := q.Get("conversation_id")
	if convID == "" {
		writeError(w, http.StatusBadRequest, "Missing conversation_id parameter")
		return
	}
	limit, offset := 50, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit must be a positive integer")
			return
		}
		limit = min(n, maxLoadLimit)
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			writeError(w, http.StatusBadRequest, "offset must be a non-negative integer")
			return
		}
		offset = n
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	if !ok {
		return
	}
	ctx := r.Context()
	rest := s.supa.As(id.Token)
	active := false
	var err error
	if isUUID(convID) {
		active, err = rest.IsActiveParticipant(ctx, convID, p.ID)
	}
	fails := failures{internal: "Failed to fetch messages", fixed: true}
	if err != nil {
		s.fail(w, r, err, fails)
		return
	}
	if !active {
		writeError(w, http.StatusForbidden, "Not authorized to view messages in this conversation")
		return
	}
	rows, err := rest.DeliveredMessages(ctx, supa.DeliveryPage{ConversationID: convID, RecipientID: p.ID,
		Limit: limit, Offset: offset, Now: s.now()})
	if err != nil {
		s.fail(w, r, err, fails)
		return
	}
	out := make([]map[string]any, 0, len(rows))
	for _, m := range rows {
		item := map[string]any{"id": m.ID, "conversation_id": m.ConversationID, "sender_id": m.SenderID,
			"encrypted_content": m.EncryptedContent, "content_type": m.ContentType,
			"has_attachments": m.HasAttachments, "created_at": m.CreatedAt, "reply_to_id": m.ReplyToID}
		if d := m.Delivery; d != nil {
			item["delivery_info"] = map[string]any{"delivered_ts": d.DeliveredTS, "read_ts": d.ReadTS, "expires_at": d.ExpiresAt}
		}
		if c := m.Copy; c != nil {
			item["disappearing_info"] = map[string]any{"expires_at": c.ExpiresAt, "start_on": c.StartOn, "read_at": c.ReadAt}
		}
		out = append(out, item)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "messages": out,
		"pagination": map[string]int{"limit": limit, "offset": offset, "count": len(out)}})
}

// PATCH /api/chat/messages {message_id} (routes.md §7.5): marks one message read for the caller.
func (s *Server) chatMessagesMarkRead(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUserWith(w, r, legacyNoAuth, legacyBadAuth)
	if !ok {
		return
	}
	var body struct {
		MessageID any `json:"message_id"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	msgID, _ := body.MessageID.(string)
	if !isUUID(msgID) {
		writeError(w, http.StatusBadRequest, "Missing message ID")
		return
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	if !ok {
		return
	}
	if err := s.supa.As(id.Token).MarkMessageRead(r.Context(), msgID, p.ID); err != nil {
		s.fail(w, r, err, failures{internal: "Failed to mark message as read", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// GET /api/chat/messages/{id} (routes.md §7.6): one message with its sender and the caller's own copy, for active
// participants.
func (s *Server) chatMessageGet(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Authentication required")
	if !ok {
		return
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	if !ok {
		return
	}
	msgID := chi.URLParam(r, "id")
	const missing = "Message not found or access denied"
	if !isUUID(msgID) {
		writeError(w, http.StatusNotFound, missing)
		return
	}
	ctx := r.Context()
	rest := s.supa.As(id.Token)
	fails := failures{internal: "Failed to fetch message", fixed: true}
	m, err := rest.MessageForRecipient(ctx, msgID, p.ID)
	if err != nil {
		s.fail(w, r, err, fails)
		return
	}
	if m == nil {
		writeError(w, http.StatusNotFound, missing)
		return
	}
	active, err := rest.IsActiveParticipant(ctx, m.ConversationID(), p.ID)
	if err != nil {
		s.fail(w, r, err, fails)
		return
	}
	if !active {
		writeError(w, http.StatusNotFound, missing)
		return
	}
	writeJSON(w, http.StatusOK, m)
}
