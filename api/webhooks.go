package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

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
		s.dbFailureFixed(w, r, err, "Failed to list webhooks")
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
		s.dbFailureFixed(w, r, err, "Failed to create webhook")
		return
	}
	if existing >= maxWebhooksPerUser {
		writeError(w, http.StatusBadRequest, "Webhook limit reached (20 per user)")
		return
	}
	hook, err := rest.CreateWebhook(r.Context(), id.AuthUID, u, events)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to create webhook")
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
		s.dbFailureFixed(w, r, err, "Failed to delete webhook")
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
	})
}
