package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// schemaSQL is devauth's own state. It lives in the stack database (not in memory) so that several devauth
// processes, and tests that run devauth in-process next to the stack's, agree about sessions and refresh tokens.
// Sessions are never deleted, only revoked, so that a logged-out session can be told apart from one devauth never
// issued (tests mint tokens with random session ids).
const schemaSQL = `
create schema if not exists devauth;
create table if not exists devauth.sessions (
  id uuid primary key,
  user_id uuid not null,
  aal text not null default 'aal1',
  amr_method text not null,
  amr_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  revoked_at timestamptz,
  revoked_reason text
);
create index if not exists sessions_user_idx on devauth.sessions (user_id);
create table if not exists devauth.refresh_tokens (
  token text primary key,
  session_id uuid not null references devauth.sessions (id) on delete cascade,
  parent text,
  created_at timestamptz not null default now(),
  used_at timestamptz,
  exchanges integer not null default 0
);
create index if not exists refresh_tokens_session_idx on devauth.refresh_tokens (session_id);
create table if not exists devauth.otp_sends (
  phone text primary key,
  code text not null,
  sent_at timestamptz not null
);
create table if not exists devauth.counters (
  name text primary key,
  value bigint not null default 0
);
`

// schemaVersion marks (as the schema's comment) that schemaSQL has been applied; bump it when schemaSQL changes.
const schemaVersion = "devauth schema v1"

// migrate creates schema devauth once. The DDL is skipped when the version marker is present, because even
// CREATE INDEX IF NOT EXISTS takes a SHARE lock and would deadlock with a running devauth's updates; the first
// creation is serialised by an advisory lock because concurrent CREATE … IF NOT EXISTS can collide in the catalogs.
func migrate(ctx context.Context, db *pool) error {
	return db.tx(ctx, func(tx pgx.Tx) error {
		current := func() (bool, error) {
			var v *string
			err := tx.QueryRow(ctx, `select obj_description(oid, 'pg_namespace') from pg_namespace
				where nspname = 'devauth'`).Scan(&v)
			if errors.Is(err, pgx.ErrNoRows) {
				return false, nil
			}
			return v != nil && *v == schemaVersion, err
		}
		if ok, err := current(); ok || err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock(hashtext('devauth.migrate'))`); err != nil {
			return err
		}
		if ok, err := current(); ok || err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, schemaSQL); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `comment on schema devauth is '`+schemaVersion+`'`)
		return err
	})
}

// authUser is the part of an auth.users row devauth reads.
type authUser struct {
	ID, Aud, Role, Email, Phone, Password string
	EmailConfirmedAt, PhoneConfirmedAt    *time.Time
	ConfirmedAt, LastSignInAt             *time.Time
	CreatedAt, UpdatedAt                  time.Time
	AppMeta, UserMeta                     map[string]any
	IsAnonymous                           bool
}

const userColumns = `id::text, coalesce(aud, ''), coalesce(role, ''), coalesce(email, ''), coalesce(phone, ''),
	coalesce(encrypted_password, ''), email_confirmed_at, phone_confirmed_at, confirmed_at, last_sign_in_at,
	coalesce(created_at, now()), coalesce(updated_at, now()), coalesce(raw_app_meta_data, '{}'),
	coalesce(raw_user_meta_data, '{}'), coalesce(is_anonymous, false)`

func scanUser(row pgx.Row) (authUser, error) {
	var u authUser
	var app, meta []byte
	err := row.Scan(&u.ID, &u.Aud, &u.Role, &u.Email, &u.Phone, &u.Password, &u.EmailConfirmedAt,
		&u.PhoneConfirmedAt, &u.ConfirmedAt, &u.LastSignInAt, &u.CreatedAt, &u.UpdatedAt, &app, &meta, &u.IsAnonymous)
	if err != nil {
		return u, err
	}
	if err := json.Unmarshal(app, &u.AppMeta); err != nil || u.AppMeta == nil {
		u.AppMeta = map[string]any{}
	}
	if err := json.Unmarshal(meta, &u.UserMeta); err != nil || u.UserMeta == nil {
		u.UserMeta = map[string]any{}
	}
	if _, ok := u.AppMeta["provider"]; !ok && u.Phone != "" {
		u.AppMeta["provider"] = "phone"
		u.AppMeta["providers"] = []string{"phone"}
	}
	if u.Aud == "" {
		u.Aud = "authenticated"
	}
	if u.Role == "" {
		u.Role = "authenticated"
	}
	return u, nil
}

// userByID returns the user, or (zero, pgx.ErrNoRows).
func userByID(ctx context.Context, q pgx.Tx, id string) (authUser, error) {
	return scanUser(q.QueryRow(ctx, `select `+userColumns+` from auth.users where id::text = $1`, id))
}

// findOrCreatePhoneUser returns the auth user with this phone (digits, no '+'), creating it when create is true,
// as GoTrue's signup-on-OTP does. ok is false when the user does not exist and create is false.
func findOrCreatePhoneUser(ctx context.Context, tx pgx.Tx, phone string, create bool) (u authUser, ok bool, err error) {
	if create {
		_, err = tx.Exec(ctx, `insert into auth.users (instance_id, id, aud, role, email, phone, raw_app_meta_data,
			raw_user_meta_data, created_at, updated_at)
			values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated', null, $1,
			        '{"provider":"phone","providers":["phone"]}', '{}', now(), now())
			on conflict (phone) do nothing`, phone)
		if err != nil {
			return u, false, fmt.Errorf("create auth user: %w", err)
		}
	}
	u, err = scanUser(tx.QueryRow(ctx, `select `+userColumns+` from auth.users where phone = $1 and deleted_at is null`, phone))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, false, nil
	}
	return u, err == nil, err
}

// markSignedIn records a successful phone sign-in (confirmation and last sign-in) and returns the fresh row.
func markSignedIn(ctx context.Context, tx pgx.Tx, id string, phoneConfirmed bool) (authUser, error) {
	q := `update auth.users set last_sign_in_at = now(), updated_at = now() where id::text = $1 returning ` + userColumns
	if phoneConfirmed {
		q = `update auth.users set phone_confirmed_at = coalesce(phone_confirmed_at, now()), last_sign_in_at = now(),
			updated_at = now() where id::text = $1 returning ` + userColumns
	}
	return scanUser(tx.QueryRow(ctx, q, id))
}

// session is one devauth.sessions row.
type session struct {
	ID, UserID, AAL, AMRMethod string
	AMRAt                      time.Time
	RevokedReason              *string
}

// createSession starts a session and its first refresh token.
func createSession(ctx context.Context, tx pgx.Tx, userID, method string) (session, string, error) {
	s := session{UserID: userID, AAL: "aal1", AMRMethod: method}
	err := tx.QueryRow(ctx, `insert into devauth.sessions (id, user_id, amr_method, amr_at)
		values (gen_random_uuid(), $1, $2, now()) returning id::text, amr_at`, userID, method).Scan(&s.ID, &s.AMRAt)
	if err != nil {
		return s, "", fmt.Errorf("create session: %w", err)
	}
	tok, err := insertRefreshToken(ctx, tx, s.ID, nil)
	return s, tok, err
}

func insertRefreshToken(ctx context.Context, tx pgx.Tx, sessionID string, parent *string) (string, error) {
	tok := newRefreshToken()
	_, err := tx.Exec(ctx, `insert into devauth.refresh_tokens (token, session_id, parent) values ($1, $2, $3)`,
		tok, sessionID, parent)
	if err != nil {
		return "", fmt.Errorf("create refresh token: %w", err)
	}
	return tok, nil
}

// newRefreshToken makes a short opaque token like GoTrue's (12 lowercase alphanumerics).
func newRefreshToken() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// sessionState reports whether a token's session may be used: ok for an active session, and also for a session id
// devauth never issued unless strict (tokens minted directly by tests carry random session ids).
func sessionState(ctx context.Context, db *pool, id string, strict bool) (ok bool, err error) {
	err = db.with(ctx, func(c *pgx.Conn) error {
		var revoked *time.Time
		e := c.QueryRow(ctx, `select revoked_at from devauth.sessions where id::text = $1`, id).Scan(&revoked)
		switch {
		case errors.Is(e, pgx.ErrNoRows):
			ok = !strict
			return nil
		case e != nil:
			return e
		}
		ok = revoked == nil
		return nil
	})
	return ok, err
}

// bumpCounter adds one to a named counter.
func bumpCounter(ctx context.Context, tx pgx.Tx, name string) error {
	_, err := tx.Exec(ctx, `insert into devauth.counters (name, value) values ($1, 1)
		on conflict (name) do update set value = devauth.counters.value + 1`, name)
	return err
}
