package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

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

func (s *Server) chatMessageRoutes(r chi.Router) {
	r.Get("/chat/messages", s.chatMessagesList)
	r.Post("/chat/messages", s.chatMessagesSend)
	r.Patch("/chat/messages", s.chatMessagesMarkRead)
	r.Get("/chat/messages/{id}", s.chatMessageGet)
}

func (s *Server) chatMessagesSend(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUserWith(w, r, legacyNoAuth, legacyBadAuth)
	if !ok {
		return
	}
	var body struct {
		ConversationID    any             `json:"conversation_id"`
		EncryptedContents json.RawMessage `json:"encrypted_contents"`
		ContentType       any             `json:"content_type"`
		HasAttachments    any             `json:"has_attachments"`
		ReplyToID         any             `json:"reply_to_id"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	convID, _ := body.ConversationID.(string)
	if convID == "" || rawFalsy(body.EncryptedContents) {
		writeError(w, http.StatusBadRequest, "Missing required fields: conversation_id, encrypted_contents")
		return
	}
	if !isUUID(convID) {
		writeError(w, http.StatusBadRequest, "Invalid conversation_id")
		return
	}
	const badObj = "encrypted_contents must be an object with user_id -> encrypted_content mappings"
	copies, ok := encodeCopies(body.EncryptedContents)
	if !ok {
		writeError(w, http.StatusBadRequest, badObj)
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
	sent, err := s.storeMessage(ctx, id.Token, map[string]any{"p_conversation_id": convID,
		"p_encrypted_contents": copies, "p_content_type": contentType,
		"p_has_attachments": hasAttachments, "p_reply_to_id": replyTo})
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to create message", fixed: true, refusals: map[error]answer{
			supa.ErrNotParticipant:         {http.StatusForbidden, "Not authorized to send messages in this conversation"},
			supa.ErrNoRecipients:           {http.StatusBadRequest, "No recipient is an active participant of this conversation"},
			supa.ErrReplyNotInConversation: {http.StatusBadRequest, "reply_to_id must be a message of this conversation"},
		}})
		return
	}
	row, members := sent.Message, sent.Participants
	ev := relay.NewMessageEvent(row)
	if err := s.hub.PublishToRoom(ctx, convID, ev, relay.PublishOptions{Participants: members}); err != nil {
		s.log.WarnContext(ctx, "chat/messages: publish failed", "err", err)
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(row, &m)
	out := map[string]json.RawMessage{}
	for _, k := range []string{"id", "conversation_id", "sender_id", "content_type", "has_attachments", "created_at", "reply_to_id"} {
		out[k] = m[k]
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": out})
}

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
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to fetch messages")
		return
	}
	if !active {
		writeError(w, http.StatusForbidden, "Not authorized to view messages in this conversation")
		return
	}
	now := s.now().UTC().Format(time.RFC3339Nano)
	var rows []struct {
		ID             string          `json:"id"`
		ConversationID string          `json:"conversation_id"`
		SenderID       string          `json:"sender_id"`
		ContentType    string          `json:"content_type"`
		HasAttachments bool            `json:"has_attachments"`
		CreatedAt      string          `json:"created_at"`
		ReplyToID      *string         `json:"reply_to_id"`
		EncContent     json.RawMessage `json:"encrypted_content"`
		Deliveries     []struct {
			DeliveredTS *string `json:"delivered_ts"`
			ReadTS      *string `json:"read_ts"`
			ExpiresAt   *string `json:"expires_at"`
		} `json:"deliveries"`
		Copies json.RawMessage `json:"message_recipients"`
	}
	err = rest.Select(ctx, "messages", supa.Q(
		"select", "id,conversation_id,sender_id,content_type,has_attachments,created_at,reply_to_id,encrypted_content,"+
			"deliveries!inner(delivered_ts,read_ts,expires_at),"+
			"message_recipients!inner(encrypted_content,expires_at,start_on,read_at)",
		"conversation_id", "eq."+convID, "deleted_at", "is.null",
		"deliveries.recipient_user_id", "eq."+p.ID, "deliveries.deleted_ts", "is.null",
		"message_recipients.recipient_user_id", "eq."+p.ID,
		"message_recipients.or", "(expires_at.is.null,expires_at.gt."+now+")",
		"order", "created_at.asc,id.asc", "limit", strconv.Itoa(limit), "offset", strconv.Itoa(offset)), &rows)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to fetch messages")
		return
	}
	out := make([]map[string]any, 0, len(rows))
	for _, m := range rows {
		var copies []struct {
			ExpiresAt *string `json:"expires_at"`
			StartOn   *string `json:"start_on"`
			ReadAt    *string `json:"read_at"`
		}
		_ = json.Unmarshal(m.Copies, &copies)
		item := map[string]any{"id": m.ID, "conversation_id": m.ConversationID, "sender_id": m.SenderID,
			"encrypted_content": ownCopy(m.Copies, m.EncContent), "content_type": m.ContentType,
			"has_attachments": m.HasAttachments, "created_at": m.CreatedAt, "reply_to_id": m.ReplyToID}
		if len(m.Deliveries) > 0 {
			d := m.Deliveries[0]
			item["delivery_info"] = map[string]any{"delivered_ts": d.DeliveredTS, "read_ts": d.ReadTS, "expires_at": d.ExpiresAt}
		}
		if len(copies) > 0 {
			c := copies[0]
			item["disappearing_info"] = map[string]any{"expires_at": c.ExpiresAt, "start_on": c.StartOn, "read_at": c.ReadAt}
		}
		out = append(out, item)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "messages": out,
		"pagination": map[string]int{"limit": limit, "offset": offset, "count": len(out)}})
}

// PATCH /api/chat/messages {message_id}: marks one message read for the caller.
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
	if err := s.supa.As(id.Token).RPC(r.Context(), "fn_mark_message_read",
		map[string]any{"p_message_id": msgID, "p_user_id": p.ID}, nil); err != nil {
		s.dbFailureFixed(w, r, err, "Failed to mark message as read")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// GET /api/chat/messages/{id}: one message with its sender and the caller's own copy, for active participants.
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
	var rows []map[string]json.RawMessage
	err := rest.Select(ctx, "messages", supa.Q(
		"select", "*,sender:users!messages_sender_id_fkey(id,username,display_name,avatar_url),message_recipients(encrypted_content,recipient_user_id)",
		"id", "eq."+msgID, "deleted_at", "is.null", "message_recipients.recipient_user_id", "eq."+p.ID, "limit", "1"), &rows)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to fetch message")
		return
	}
	if len(rows) == 0 {
		writeError(w, http.StatusNotFound, missing)
		return
	}
	m := rows[0]
	var conv string
	_ = json.Unmarshal(m["conversation_id"], &conv)
	active, err := rest.IsActiveParticipant(ctx, conv, p.ID)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to fetch message")
		return
	}
	if !active {
		writeError(w, http.StatusNotFound, missing)
		return
	}
	m["encrypted_content"] = ownCopy(m["message_recipients"], m["encrypted_content"])
	delete(m, "message_recipients")
	writeJSON(w, http.StatusOK, m)
}
