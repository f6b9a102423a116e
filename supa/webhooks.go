package supa

import (
	"context"
	"errors"
	"strconv"
)

// Queries of the webhooks table under the caller's token (routes.md §9.4). Rows are keyed by the owner's auth uid
// and row-level security shows each user only their own; the one lookup of other users' webhooks, for delivery, is
// the service-role WebhooksFor in service.go.

// ErrWebhookNotCreated means the insert of a webhooks row succeeded but PostgREST returned no row to answer with.
var ErrWebhookNotCreated = errors.New("supa: insert webhooks returned no row")

// Webhook is one webhooks row as its owner sees it.
type Webhook struct {
	ID        string   `json:"id"`
	URL       string   `json:"url"`
	Events    []string `json:"events"`
	CreatedAt string   `json:"created_at"`
}

const webhookColumns = "id,url,events,created_at"

// Webhooks lists the webhooks of authUID, newest first; never nil, so that none encodes as [].
func (r Rest) Webhooks(ctx context.Context, authUID string) ([]Webhook, error) {
	rows := []Webhook{}
	err := r.Select(ctx, "webhooks", Q("select", webhookColumns, "user_id", "eq."+authUID, "order", "created_at.desc"), &rows)
	return rows, err
}

// maxWebhookCount bounds the rows WebhookCount reads: callers compare the count with a far smaller cap.
const maxWebhookCount = 100

// WebhookCount counts the webhooks of authUID, up to maxWebhookCount.
func (r Rest) WebhookCount(ctx context.Context, authUID string) (int, error) {
	var rows []struct {
		ID string `json:"id"`
	}
	err := r.Select(ctx, "webhooks", Q("select", "id", "user_id", "eq."+authUID, "limit", strconv.Itoa(maxWebhookCount)), &rows)
	return len(rows), err
}

// CreateWebhook stores a webhook of authUID for url and events (validated by the caller) and returns the row;
// ErrWebhookNotCreated when PostgREST returned none.
func (r Rest) CreateWebhook(ctx context.Context, authUID, url string, events []string) (Webhook, error) {
	var rows []Webhook
	err := r.Insert(ctx, "webhooks", map[string]any{"user_id": authUID, "url": url, "events": events},
		Q("select", webhookColumns), &rows)
	if err != nil {
		return Webhook{}, err
	}
	if len(rows) != 1 {
		return Webhook{}, ErrWebhookNotCreated
	}
	return rows[0], nil
}

// DeleteWebhook removes the webhook id of authUID; deleting one that does not exist (or is another user's) is no
// error.
func (r Rest) DeleteWebhook(ctx context.Context, authUID, id string) error {
	return r.Delete(ctx, "webhooks", Q("id", "eq."+id, "user_id", "eq."+authUID), nil)
}
