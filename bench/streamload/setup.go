package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// benchUser is one simulated browser: a real auth.users and public.users row, a room (a group conversation it is
// an active participant of) and the @supabase/ssr session cookie value its browser would carry.
type benchUser struct {
	ID     string `json:"id"`   // public.users.id (the internal id the relay registers streams under)
	Auth   string `json:"auth"` // auth.users.id (the token's sub)
	Room   int    `json:"room"` // index into setup.Rooms
	Cookie string `json:"cookie"`
}

type setup struct {
	CookieName string      `json:"cookie_name"`
	Rooms      []string    `json:"rooms"`   // conversation ids
	Members    [][]int     `json:"members"` // room -> user indexes
	Users      []benchUser `json:"users"`
}

// createUsers inserts n users in one statement per table (the way Supabase Auth shapes a confirmed phone user, as
// internal/testenv does one at a time) and groups them into group conversations of roomSize members. Phone numbers
// and usernames carry a random run tag, so runs never collide with each other or with the tests sharing the stack.
func createUsers(ctx context.Context, dbURL string, n, roomSize int, ttl time.Duration) (*setup, error) {
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	defer db.Close(context.Background())
	tagb := make([]byte, 2)
	_, _ = rand.Read(tagb)
	tag := fmt.Sprintf("%04d", (int(tagb[0])<<8|int(tagb[1]))%10000)
	rows, err := db.Query(ctx, `
with a as (
  insert into auth.users (instance_id, id, aud, role, phone, phone_confirmed_at, raw_app_meta_data, raw_user_meta_data,
                          confirmation_token, recovery_token, email_change_token_new, email_change, created_at, updated_at)
  select '00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
         '1557' || $1::text || lpad(g::text, 6, '0'), now(), '{"provider":"phone","providers":["phone"]}', '{}',
         '', '', '', '', now(), now()
  from generate_series(1, $2::int) g
  returning id, phone)
insert into public.users (auth_user_id, phone_number, username, display_name)
select id, '+' || phone, 'sl' || phone, 'Load ' || phone from a
returning id::text, auth_user_id::text, phone_number`, tag, n)
	if err != nil {
		return nil, fmt.Errorf("create users: %w", err)
	}
	s := &setup{}
	phones := []string{}
	for rows.Next() {
		var u benchUser
		var phone string
		if err := rows.Scan(&u.ID, &u.Auth, &phone); err != nil {
			return nil, err
		}
		s.Users = append(s.Users, u)
		phones = append(phones, phone)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("create users: %w", err)
	}
	rooms := (len(s.Users) + roomSize - 1) / roomSize
	for r := 0; r < rooms; r++ {
		members := []int{}
		ids := []string{}
		for i := r * roomSize; i < min(len(s.Users), (r+1)*roomSize); i++ {
			members = append(members, i)
			ids = append(ids, s.Users[i].ID)
			s.Users[i].Room = r
		}
		var conv string
		if err := db.QueryRow(ctx, `insert into public.conversations (type, name, created_by)
		     values ('group', $1, $2) returning id::text`, fmt.Sprintf("load %s room %d", tag, r), ids[0]).Scan(&conv); err != nil {
			return nil, fmt.Errorf("create conversation: %w", err)
		}
		if _, err := db.Exec(ctx, `insert into public.conversation_participants (conversation_id, user_id, role)
		     select $1, u::uuid, case when u = $3 then 'admin' else 'member' end from unnest($2::text[]) u
		     on conflict do nothing`, conv, ids, ids[0]); err != nil {
			return nil, fmt.Errorf("add participants: %w", err)
		}
		s.Rooms = append(s.Rooms, conv)
		s.Members = append(s.Members, members)
	}
	for i := range s.Users {
		c, err := sessionCookie(s.Users[i], phones[i], ttl)
		if err != nil {
			return nil, err
		}
		s.Users[i].Cookie = c
	}
	return s, nil
}

// sessionCookie is what @supabase/ssr stores for a signed-in phone user: "base64-" + base64url(JSON session), with
// an ES256 access token shaped like Supabase Auth's and the user object (middleware/cookie.go reads it back). About
// 2.4 KB, one cookie (below the 3,180-byte chunk size), like a real one.
func sessionCookie(u benchUser, phone string, ttl time.Duration) (string, error) {
	now := time.Now()
	rnd := make([]byte, 6)
	_, _ = rand.Read(rnd)
	sid := "00000000-0000-4000-8000-" + hex.EncodeToString(rnd)
	tok, err := devkeys.SignES256(jwt.MapClaims{
		"iss": "http://127.0.0.1:54321/auth/v1", "aud": "authenticated", "sub": u.Auth,
		"role": "authenticated", "exp": now.Add(ttl).Unix(), "iat": now.Add(-time.Minute).Unix(),
		"session_id": sid, "aal": "aal1", "amr": []map[string]any{{"method": "otp", "timestamp": now.Unix()}},
		"phone": phone[1:], "email": "", "is_anonymous": false,
		"app_metadata":  map[string]any{"provider": "phone", "providers": []string{"phone"}},
		"user_metadata": map[string]any{},
	})
	if err != nil {
		return "", err
	}
	ts := now.UTC().Format(time.RFC3339Nano)
	user := map[string]any{"id": u.Auth, "aud": "authenticated", "role": "authenticated", "email": "", "phone": phone[1:],
		"phone_confirmed_at": ts, "confirmed_at": ts, "last_sign_in_at": ts, "is_anonymous": false,
		"app_metadata": map[string]any{"provider": "phone", "providers": []string{"phone"}}, "user_metadata": map[string]any{},
		"identities": []any{}, "created_at": ts, "updated_at": ts}
	raw, err := json.Marshal(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(ttl.Seconds()),
		"expires_at": now.Add(ttl).Unix(), "refresh_token": hex.EncodeToString(rnd), "user": user})
	if err != nil {
		return "", err
	}
	return "base64-" + base64.RawURLEncoding.EncodeToString(raw), nil
}
