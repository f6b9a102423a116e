package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/supa"
	"github.com/qryptchat/suparelay/webhooks"
)

func (s *Server) webhookRoutes(r chi.Router) {
	r.Get("/webhooks", s.listWebhooks)
	r.Post("/webhooks", s.createWebhook)
	r.Delete("/webhooks/{id}", s.deleteWebhook)
}

// Webhook events users may subscribe to (routes.md §9.4) and a per-user cap.
var webhookEvents = map[string]bool{"message.created": true, "conversation.created": true, "message.deleted": true}

const maxWebhooksPerUser = 20

// GET /api/webhooks (routes.md §9.4): the caller's webhooks, newest first.
func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	rows, err := s.supa.As(id.Token).Webhooks(r.Context(), id.AuthUID)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to list webhooks", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": rows})
}

// POST /api/webhooks {url, events} (routes.md §9.4): only http(s) URLs that do not point into private networks.
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body struct {
		URL    any `json:"url"`
		Events any `json:"events"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	u, isStr := body.URL.(string)
	if !isStr || u == "" {
		writeError(w, http.StatusBadRequest, "url is required")
		return
	}
	if err := webhooks.ValidateURL(u); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid URL")
		return
	}
	arr, isArr := body.Events.([]any)
	if !isArr || len(arr) == 0 || len(arr) > len(webhookEvents) {
		writeError(w, http.StatusBadRequest, "events must be a non-empty array")
		return
	}
	events := make([]string, 0, len(arr))
	seen := map[string]bool{}
	for _, e := range arr {
		name, _ := e.(string)
		if !webhookEvents[name] {
			writeError(w, http.StatusBadRequest, "events must be a non-empty array")
			return
		}
		if !seen[name] {
			seen[name] = true
			events = append(events, name)
		}
	}
	rest := s.supa.As(id.Token)
	existing, err := rest.WebhookCount(r.Context(), id.AuthUID)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to create webhook", fixed: true})
		return
	}
	if existing >= maxWebhooksPerUser {
		writeError(w, http.StatusBadRequest, "Webhook limit reached (20 per user)")
		return
	}
	hook, err := rest.CreateWebhook(r.Context(), id.AuthUID, u, events)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to create webhook", fixed: true})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"webhook": hook})
}

// DELETE /api/webhooks/{id} (routes.md §9.4): 200 whether or not the caller had such a webhook.
func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	hookID := chi.URLParam(r, "id")
	if !isUUID(hookID) {
		writeError(w, http.StatusBadRequest, "Invalid webhook id")
		return
	}
	if err := s.supa.As(id.Token).DeleteWebhook(r.Context(), id.AuthUID, hookID); err != nil {
		s.fail(w, r, err, failures{internal: "Failed to delete webhook", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// webhookLookupTimeout bounds the background lookup of who wants an event.
const webhookLookupTimeout = 5 * time.Second

// emitWebhooks delivers event about a conversation to the webhooks of its active participants, in the background:
// the request that caused it never waits for a receiver.
func (s *Server) emitWebhooks(token, event string, members []string, data any) {
	if s.webhooks == nil || len(members) == 0 {
		return
	}
	payload := mustJSON(data)
	s.goBackground("webhook lookup", func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, webhookLookupTimeout)
		defer cancel()
		s.deliverToMembers(ctx, token, event, members, payload)
	})
}

// deliverToMembers queues event with payload for every webhook of members (internal ids) subscribed to it.
func (s *Server) deliverToMembers(ctx context.Context, token, event string, members []string, payload []byte) {
	if len(members) == 0 {
		return
	}
	byID, err := s.authUIDs(ctx, token, members)
	if err != nil {
		s.log.Warn("webhooks: participant lookup failed", "event", event, "err", err)
		return
	}
	uids := make([]string, 0, len(byID))
	for _, uid := range byID {
		uids = append(uids, uid)
	}
	targets, err := s.supa.WebhooksFor(ctx, uids, event)
	if err != nil {
		s.log.Warn("webhooks: lookup failed", "event", event, "err", err)
		return
	}
	for _, t := range targets {
		if !s.webhooks.Enqueue(ctx, webhooks.Delivery{URL: t.URL, Event: event, Data: json.RawMessage(payload)}) {
			s.log.Warn("webhooks: delivery not queued", "event", event, "webhook", t.ID)
		}
	}
}

// messagesDeleted is what a message.deleted webhook carries: which messages of one conversation are gone and who
// removed them, never content. Scope says which: "conversation" — every message of it (a direct chat wiped, or
// its last participant left); "sender" — every message deleted_by had sent in it (they left a group); "messages"
// — exactly message_ids.
type messagesDeleted struct {
	ConversationID string   `json:"conversation_id"`
	DeletedBy      string   `json:"deleted_by"`
	Scope          string   `json:"scope"`
	MessageIDs     []string `json:"message_ids,omitempty"`
	Count          int      `json:"count"`
}

// emitConversationMessagesDeleted sends message.deleted for what conversations/delete removed (scope as
// api_delete_conversation answers it: "all" or "self") to the webhooks of everyone who was in the conversation —
// members as the database saw them before the wipe, since nobody can look them up afterwards. Nothing is sent
// when no message went.
func (s *Server) emitConversationMessagesDeleted(token, convID, deletedBy, scope string, count int, members []string) {
	if count <= 0 {
		return
	}
	ev := messagesDeleted{ConversationID: convID, DeletedBy: deletedBy, Scope: "sender", Count: count}
	if scope == "all" {
		ev.Scope = "conversation"
	}
	s.emitWebhooks(token, "message.deleted", members, ev)
}

// maxDeletedIDsPerDelivery keeps a message.deleted body listing ids well under the deliverer's payload limit.
const maxDeletedIDsPerDelivery = 200

// emitMessagesDeleted sends message.deleted for deleted messages to the webhooks of the active participants of their conversations, one delivery per
// conversation and at most maxDeletedIDsPerDelivery ids each. The caller, who deleted them, must still be a
// participant: the lookup runs later, in the background, under the caller's token.
func (s *Server) emitMessagesDeleted(token, deletedBy string, rows []supa.DeletedMessage) {
	if s.webhooks == nil || len(rows) == 0 {
		return
	}
	byConv := map[string][]string{}
	var convs []string
	for _, m := range rows {
		if m.ID == "" || m.ConversationID == "" {
			continue
		}
		if _, seen := byConv[m.ConversationID]; !seen {
			convs = append(convs, m.ConversationID)
		}
		byConv[m.ConversationID] = append(byConv[m.ConversationID], m.ID)
	}
	if len(convs) == 0 {
		return
	}
	s.goBackground("webhook lookup", func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, webhookLookupTimeout)
		defer cancel()
		rows, err := s.supa.As(token).MembersOf(ctx, convs)
		if err != nil {
			s.log.Warn("webhooks: participant lookup failed", "event", "message.deleted", "err", err)
			return
		}
		members := map[string][]string{}
		for _, r := range rows {
			if r.LeftAt == nil {
				members[r.ConversationID] = append(members[r.ConversationID], r.UserID)
			}
		}
		for _, conv := range convs {
			ids := byConv[conv]
			for start := 0; start < len(ids); start += maxDeletedIDsPerDelivery {
				part := ids[start:min(start+maxDeletedIDsPerDelivery, len(ids))]
				ev := messagesDeleted{ConversationID: conv, DeletedBy: deletedBy, Scope: "messages", MessageIDs: part, Count: len(part)}
				s.deliverToMembers(ctx, token, "message.deleted", members[conv], mustJSON(ev))
			}
		}
	})
}
