package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
)

// messageRoutes registers the messages routes (routes.md §6.2, §6.3).
func (s *Server) messageRoutes(r chi.Router) {
	r.Post("/messages/send", s.sendMessage)
	r.Post("/messages/load", s.loadMessages)
}

// Limits of messages/load and of the activity stamps (a send's own limits are MessageLimits).
const (
	defaultLoadLimit  = 50
	maxLoadLimit      = 200
	activityThrottle  = 30 * time.Second
	activityCallLimit = 5 * time.Second
)

var messageTypes = map[string]bool{"text": true, "image": true, "file": true, "system": true}

const badContents = "encryptedContents must be an object with user_id -> encrypted_content mappings"

type sendRequest struct {
	ConversationID    any             `json:"conversationId"`
	EncryptedContents any             `json:"encryptedContents"`
	MessageType       any             `json:"messageType"`
	Metadata          json.RawMessage `json:"metadata"`
	ReplyToID         any             `json:"replyToId"`
}

// POST /api/messages/send (routes.md §6.2): stores one message with a ciphertext copy per recipient and its
// deliveries, atomically (one RPC), then announces it to the room, the sender's own streams included (sse.md §4).
// A send whose outcome went unheard is resolved before it is answered (storeMessage, send_outcome.go).
func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body sendRequest
	if !readJSON(w, r, &body) {
		return
	}
	convID, _ := body.ConversationID.(string)
	if convID == "" || jsFalsy(body.EncryptedContents) {
		writeError(w, http.StatusBadRequest, "Conversation ID and encrypted contents are required")
		return
	}
	if !isUUID(convID) {
		writeError(w, http.StatusBadRequest, "Invalid conversationId")
		return
	}
	contents, problem := s.msgLimits.recipientContents(body.EncryptedContents)
	if s.msgLimits.contentsAnswered(w, problem, "encryptedContents", badContents) {
		return
	}
	msgType := "text"
	if body.MessageType != nil {
		t, _ := body.MessageType.(string)
		if !messageTypes[t] {
			writeError(w, http.StatusBadRequest, "messageType must be one of text, image, file, system")
			return
		}
		msgType = t
	}
	metadata := json.RawMessage(`{}`)
	if len(body.Metadata) > 0 && string(body.Metadata) != "null" {
		if !isJSONObject(body.Metadata) {
			writeError(w, http.StatusBadRequest, "metadata must be an object")
			return
		}
		if s.msgLimits.metadataTooLarge(body.Metadata) {
			writeError(w, http.StatusRequestEntityTooLarge,
				"metadata must be at most "+strconv.Itoa(s.msgLimits.MetadataMaxBytes)+" bytes")
			return
		}
		metadata = body.Metadata
	}
	var replyTo *string
	if body.ReplyToID != nil {
		rid, _ := body.ReplyToID.(string)
		if !isUUID(rid) {
			writeError(w, http.StatusBadRequest, "Invalid replyToId")
			return
		}
		replyTo = &rid
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	if !ok {
		return
	}
	ctx := r.Context()
	announce := func(ctx context.Context, sent supa.SentMessage) {
		row, members := sent.Message, sent.Participants
		if err := s.hub.PublishToRoom(ctx, convID, relay.NewMessageEvent(row), relay.PublishOptions{Participants: members}); err != nil {
			s.log.WarnContext(ctx, "send: publish failed", "conversation", convID, "err", err)
		}
		s.touchActivity(id.Token, p.ID)
		s.emitWebhooks(id.Token, "message.created", members, messageCreatedPayload(row))
	}
	sent, err := s.storeMessage(ctx, id.Token, supa.NewMessage{ConversationID: convID, Contents: contents,
		MessageType: msgType, Metadata: metadata, ReplyToID: replyTo}, announce)
	if err != nil {
		s.failSend(w, r, err, failures{internal: "Failed to send message", refusals: withSendFailures(map[error]answer{
			supa.ErrNotParticipant:         {http.StatusForbidden, "Access denied to conversation"},
			supa.ErrNoRecipients:           {http.StatusBadRequest, "No recipient is an active participant of this conversation"},
			supa.ErrReplyNotInConversation: {http.StatusBadRequest, "replyToId must be a message of this conversation"},
		})})
		return
	}
	announce(context.WithoutCancel(ctx), sent) // the message is stored: announce it even if the sender has left
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": sent.Message})
}

// jsFalsy reports whether a decoded JSON value is absent or falsy in JavaScript's sense (null, false, 0, ""): the
// original tested presence with `!value`.
func jsFalsy(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case bool:
		return !t
	case float64:
		return t == 0
	case string:
		return t == ""
	}
	return false
}

type loadRequest struct {
	ConversationID any `json:"conversationId"`
	Limit          any `json:"limit"`
	Before         any `json:"before"`
}

// POST /api/messages/load (routes.md §6.3): the newest page of messages (ascending) with the caller's own copy,
// and the caller joins the conversation's room. The original returned the oldest 50.
func (s *Server) loadMessages(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body loadRequest
	if !readJSON(w, r, &body) {
		return
	}
	convID, ok := conversationID(w, body.ConversationID)
	if !ok {
		return
	}
	limit := defaultLoadLimit
	if body.Limit != nil {
		f, isNum := body.Limit.(float64)
		if !isNum || f < 1 || f != float64(int(f)) {
			writeError(w, http.StatusBadRequest, "limit must be a positive integer")
			return
		}
		limit = min(int(f), maxLoadLimit)
	}
	var before string
	if body.Before != nil {
		b, _ := body.Before.(string)
		t, err := time.Parse(time.RFC3339Nano, b)
		if err != nil {
			writeError(w, http.StatusBadRequest, "before must be an ISO-8601 timestamp")
			return
		}
		before = t.UTC().Format(time.RFC3339Nano)
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	if !ok {
		return
	}
	ctx := r.Context()
	rest := s.supa.As(id.Token)
	fails := failures{internal: "Failed to load messages"}
	active, err := rest.IsActiveParticipant(ctx, convID, p.ID)
	if err != nil {
		s.fail(w, r, err, fails)
		return
	}
	if !active {
		writeError(w, http.StatusForbidden, "Access denied to conversation")
		return
	}
	out, err := rest.LatestMessages(ctx, supa.MessagePage{ConversationID: convID, RecipientID: p.ID, Limit: limit, Before: before})
	if err != nil {
		s.fail(w, r, err, fails)
		return
	}
	if err := s.hub.Join(ctx, convID, p.ID); err != nil {
		s.log.WarnContext(ctx, "load: room join failed", "conversation", convID, "err", err)
	}
	s.touchActivity(id.Token, p.ID)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "messages": out, "hasMore": len(out) == limit})
}

// activityTracker throttles update_user_activity to once per user per activityThrottle: the original called it on
// every send and load, a database write on the hot path that only feeds "last active" and SMS-notice decisions.
type activityTracker struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// touchActivity records the user's activity in the background, at most once per activityThrottle.
func (s *Server) touchActivity(token, userID string) {
	now := s.now()
	s.activity.mu.Lock()
	if now.Sub(s.activity.last[userID]) < activityThrottle {
		s.activity.mu.Unlock()
		return
	}
	if len(s.activity.last) > 100_000 {
		clear(s.activity.last)
	}
	s.activity.last[userID] = now
	s.activity.mu.Unlock()
	s.goBackground("user activity", func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, activityCallLimit)
		defer cancel()
		if err := s.supa.As(token).UpdateUserActivity(ctx, userID); err != nil {
			s.log.Debug("update_user_activity failed", "user", userID, "err", err)
		}
	})
}

// messageCreatedPayload is what a message.created webhook carries: identifiers and time, never content (which is
// end-to-end encrypted anyway).
func messageCreatedPayload(row json.RawMessage) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(row, &m)
	out := map[string]json.RawMessage{}
	for _, k := range []string{"id", "conversation_id", "sender_id", "message_type", "created_at", "has_attachments"} {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}
