package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// apiKeys are the stack's well-known development keys (internal/devkeys): public on purpose, development only.
type apiKeys struct{ anon, service, jwtSecret string }

func devKeys() apiKeys {
	return apiKeys{anon: devkeys.AnonKey(), service: devkeys.ServiceRoleKey(), jwtSecret: devkeys.JWTSecret}
}

// member is one user of the benchmark room, signed in through the real Supabase Auth.
type member struct {
	phone   string // E.164
	authID  string
	id      string // public.users.id (the internal id the routes and events use)
	cookie  string // the @supabase/ssr session cookie's value, as the browser stores it
	session json.RawMessage
}

// allocPhones takes n numbers of the test phone block from the stack database's sequence (the one the e2e tests
// use, so that no two users of one stack share a number); a number the block wrapped around to is first detached
// from its earlier owner, as the tests do.
func allocPhones(ctx context.Context, db *pgx.Conn, n int) ([]string, error) {
	if n > devkeys.TestPhoneCount {
		return nil, fmt.Errorf("at most %d members (the test phone block)", devkeys.TestPhoneCount)
	}
	if _, err := db.Exec(ctx, `create schema if not exists suparelay_test;
	                           create sequence if not exists suparelay_test.test_phone`); err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `select nextval('suparelay_test.test_phone') from generate_series(1, $1)`, n)
	if err != nil {
		return nil, err
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, n)
	for _, s := range seqs {
		phone := devkeys.TestPhone(int(s - 1))
		if s > devkeys.TestPhoneCount {
			if _, err := db.Exec(ctx, `update auth.users set phone = null where phone = $1`, phone); err != nil {
				return nil, err
			}
			if _, err := db.Exec(ctx, `update public.users set phone_number = '+0' || replace(id::text, '-', '')
			                           where phone_number = $1`, "+"+phone); err != nil {
				return nil, err
			}
		}
		out = append(out, "+"+phone)
	}
	return out, nil
}

// signIn runs the real phone OTP flow against Supabase Auth behind the gateway (the test code is accepted
// without an SMS) and returns the session.
func signIn(ctx context.Context, hc *http.Client, gateway, anon, phone string) (authID string, session json.RawMessage, err error) {
	call := func(path string, body any, out any) error {
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, "POST", gateway+"/auth/v1"+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("apikey", anon)
		req.Header.Set("Authorization", "Bearer "+anon)
		req.Header.Set("Content-Type", "application/json")
		res, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		rb, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("auth %s: %d %s", path, res.StatusCode, bytes.TrimSpace(rb))
		}
		if out != nil {
			return json.Unmarshal(rb, out)
		}
		return nil
	}
	if err := call("/otp", map[string]any{"phone": phone}, nil); err != nil {
		return "", nil, err
	}
	var raw json.RawMessage
	if err := call("/verify", map[string]any{"type": "sms", "phone": phone, "token": devkeys.TestOTP}, &raw); err != nil {
		return "", nil, err
	}
	var s struct {
		AccessToken string `json:"access_token"`
		User        struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if json.Unmarshal(raw, &s) != nil || s.AccessToken == "" || s.User.ID == "" {
		return "", nil, fmt.Errorf("auth /verify for %s: no session", phone)
	}
	return s.User.ID, raw, nil
}

// cookieValue encodes a session as @supabase/ssr stores it: "base64-" and the unpadded base64url of the JSON.
func cookieValue(session []byte) string {
	return "base64-" + base64.RawURLEncoding.EncodeToString(session)
}

// createMembers signs n users in (a few at a time: Auth is part of the stack being measured later, not now) and
// gives each a profile row, as registration does.
func createMembers(ctx context.Context, db *pgx.Conn, gateway string, keys apiKeys, n int, tag string) ([]*member, error) {
	phones, err := allocPhones(ctx, db, n)
	if err != nil {
		return nil, fmt.Errorf("test phones: %w", err)
	}
	out := make([]*member, n)
	hc := &http.Client{Timeout: 20 * time.Second}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 8)
	for i, p := range phones {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			authID, sess, err := signIn(ctx, hc, gateway, keys.anon, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			out[i] = &member{phone: p, authID: authID, session: sess, cookie: cookieValue(sess)}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	for i, m := range out {
		// A stale profile holding this number (a user of an earlier run whose number was not freed) lets go of it.
		if _, err := db.Exec(ctx, `update public.users set phone_number = '+0' || replace(id::text, '-', '')
		                           where phone_number = $1 and auth_user_id is distinct from $2`, m.phone, m.authID); err != nil {
			return nil, err
		}
		name := fmt.Sprintf("cmp_%s_%d", tag, i)
		if err := db.QueryRow(ctx, `insert into public.users (auth_user_id, phone_number, username, display_name)
		                            values ($1, $2, $3, $3)
		                            on conflict (auth_user_id) do update set phone_number = excluded.phone_number
		                            returning id::text`, m.authID, m.phone, name).Scan(&m.id); err != nil {
			return nil, fmt.Errorf("profile of %s: %w", m.phone, err)
		}
	}
	return out, nil
}

// createRoom makes a group conversation of every member (the first is its creator and admin, as the production
// trigger makes it).
func createRoom(ctx context.Context, db *pgx.Conn, members []*member, tag string) (string, error) {
	var id string
	if err := db.QueryRow(ctx, `insert into public.conversations (type, name, created_by) values ('group', $1, $2)
	                            returning id::text`, "bench compare "+tag, members[0].id).Scan(&id); err != nil {
		return "", err
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.id
	}
	if _, err := db.Exec(ctx, `insert into public.conversation_participants (conversation_id, user_id, role)
	                           select $1, u, case when u = $3::uuid then 'admin' else 'member' end
	                           from unnest($2::uuid[]) as u
	                           on conflict (conversation_id, user_id) do nothing`, id, ids, members[0].id); err != nil {
		return "", err
	}
	var n int
	if err := db.QueryRow(ctx, `select count(*) from public.conversation_participants
	                            where conversation_id = $1 and left_at is null`, id).Scan(&n); err != nil {
		return "", err
	}
	if n != len(members) {
		return "", fmt.Errorf("room has %d participants, want %d", n, len(members))
	}
	return id, nil
}
