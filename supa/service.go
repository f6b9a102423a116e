package supa

import (
	"context"
	"strings"
)

// This file holds every use of the service-role key. Each method says why the caller's own token cannot do the job.
// Nothing else in the server can reach the service-role handle.

// ProfileRow is the users row as verify-sms answers it.
type ProfileRow struct {
	Profile
	CreatedAt *string `json:"created_at"`
}

// UsernameTaken reports whether any user already has username, compared case-insensitively and exactly.
//
// Service role because: the check must see every users row, and row-level security (rightly) no longer lets one
// user enumerate the others' rows. It reveals one bit (taken or not) for a name the caller typed, which the unique
// index would reveal on insert anyway.
func (c *Client) UsernameTaken(ctx context.Context, username string) (bool, error) {
	if strings.ContainsAny(username, "*") {
		// PostgREST turns '*' into a LIKE wildcard that cannot be escaped; the unique index on lower(username)
		// still refuses a duplicate at insert time.
		return false, nil
	}
	sr, err := c.service()
	if err != nil {
		return false, err
	}
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(username)
	var rows []struct {
		ID string `json:"id"`
	}
	if err := sr.Select(ctx, "users", Q("select", "id", "username", "ilike."+esc, "limit", "1"), &rows); err != nil {
		return false, err
	}
	return len(rows) > 0, nil
}

// CreateUserProfile inserts the users row of a newly verified phone user (auth.md §6.1).
//
// Service role because: users has no insert policy — a user must not be able to create or re-link profile rows for
// arbitrary auth uids or phone numbers. The server only calls this after Supabase Auth verified the phone (OTP
// branch) or after checking that the body's phone equals the token's phone claim (session branch), and authUID is
// always the verified token's subject.
func (c *Client) CreateUserProfile(ctx context.Context, authUID, phone, username, displayName string) (ProfileRow, error) {
	sr, err := c.service()
	if err != nil {
		return ProfileRow{}, err
	}
	var rows []ProfileRow
	err = sr.Insert(ctx, "users", map[string]any{
		"auth_user_id": authUID, "phone_number": phone, "username": username,
		"display_name": displayName, "avatar_url": nil,
	}, Q("select", "id,username,display_name,avatar_url,created_at"), &rows)
	if err != nil {
		return ProfileRow{}, err
	}
	if len(rows) != 1 {
		return ProfileRow{}, &Error{Op: "insert users", Status: 500, Message: "no row returned"}
	}
	return rows[0], nil
}

// CleanupExpiredMessages runs fn_cleanup_expired_messages() for every user and returns how many copies it deleted.
//
// Service role because: this is the background job of the original server (routes.md §2.4); it acts on all users'
// expired copies at once, on behalf of nobody.
func (c *Client) CleanupExpiredMessages(ctx context.Context) (int, error) {
	sr, err := c.service()
	if err != nil {
		return 0, err
	}
	var n int
	err = sr.RPC(ctx, "fn_cleanup_expired_messages", map[string]any{}, &n)
	return n, err
}

// WebhookTarget is a stored webhook that wants an event.
type WebhookTarget struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	URL    string `json:"url"`
}

// WebhooksFor lists the webhooks of the given users (auth uids) subscribed to event.
//
// Service role because: webhooks belong to their owners and row-level security (rightly) shows each user only
// their own; delivering "message.created" to the OTHER participants' webhooks needs to read theirs. The server
// calls this only with the auth uids of the active participants of a conversation the caller just wrote to, and
// only ever sends the stored URL an event about that conversation.
func (c *Client) WebhooksFor(ctx context.Context, authUIDs []string, event string) ([]WebhookTarget, error) {
	if len(authUIDs) == 0 {
		return nil, nil
	}
	sr, err := c.service()
	if err != nil {
		return nil, err
	}
	var out []WebhookTarget
	err = sr.Select(ctx, "webhooks", Q("select", "id,user_id,url", "user_id", In(authUIDs), "events", "cs.{"+event+"}", "limit", "1000"), &out)
	return out, err
}
