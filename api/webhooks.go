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

type webhookRow struct {
	ID        string   `json:"id"`
	URL       string   `json:"url"`
	Events    []string `json:"events"`
	CreatedAt string   `json:"created_at"`
}

// GET /api/webhooks: the caller's webhooks, newest first.
func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	rows := []webhookRow{}
	err := s.supa.As(id.Token).Select(r.Context(), "webhooks", supa.Q("select", "id,url,events,created_at",
		"user_id", "eq."+id.AuthUID, "order", "created_at.desc"), &rows)
	if err != nil {
		s.dbFailureFixed(w, r, err, "Failed to list webhooks")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": rows})
}

// POST /api/webhooks {url, events}: only http(s) URLs that do not point into private networks.
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
	var existing []struct {
		ID string `json:"id"`
	}
	if err := rest.Select(r.Context(), "webhooks", supa.Q("select", "id", "user_id", "eq."+id.AuthUID, "limit", "100"), &existing); err != nil {
		s.dbFailureFixed(w, r, err, "Failed to create webhook")
		return
	}
	if len(existing) >= maxWebhooksPerUser {
		writeError(w, http.StatusBadRequest, "Webhook limit reached (20 per user)")
		return
	}
	var rows []webhookRow
	err := rest.Insert(r.Context(), "webhooks", map[string]any{"user_id": id.AuthUID, "url": u, "events": events},
		supa.Q("select", "id,url,events,created_at"), &rows)
	if err != nil || len(rows) != 1 {
		if err == nil {
			err = &supa.Error{Op: "insert webhooks", Status: 500, Message: "no row returned"}
		}
		s.dbFailureFixed(w, r, err, "Failed to create webhook")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"webhook": rows[0]})
}

// DELETE /api/webhooks/{id}: 200 whether or not the caller had such a webhook.
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
	err := s.supa.As(id.Token).Delete(r.Context(), "webhooks", supa.Q("id", "eq."+hookID, "user_id", "eq."+id.AuthUID), nil)
	if err != nil {
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
	s.goBackground("webhook lookup", func() {
		ctx, cancel := context.WithTimeout(context.Background(), webhookLookupTimeout)
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
			if !s.webhooks.Enqueue(webhooks.Delivery{URL: t.URL, Event: event, Data: json.RawMessage(payload)}) {
				s.log.Warn("webhooks: delivery not queued", "event", event, "webhook", t.ID)
			}
		}
	})
}
