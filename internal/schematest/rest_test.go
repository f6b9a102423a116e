package schematest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// rest talks to the stack's real PostgREST (no gateway), the way the server does with a user's token or an API key.
type rest struct {
	base   string
	client *http.Client
}

func newREST(t *testing.T) rest {
	t.Helper()
	return rest{base: strings.TrimRight(testenv.PostgRESTURL(t), "/"), client: &http.Client{Timeout: 15 * time.Second}}
}

// do sends one request. token "" sends no Authorization header (PostgREST then uses the anon role).
func (r rest) do(t *testing.T, method, path, token string, body any, headers ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctxT(t), method, r.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// rows decodes a JSON array response; ok is false when the body is not an array.
func rows(body []byte) (out []map[string]any, ok bool) {
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, false
	}
	return out, true
}

// chat is one conversation created directly in the stack's database: owner (creator, admin) and member, one message
// from owner with a copy for each of them and a delivery for member. outsider belongs to nothing.
type chat struct {
	owner, member, outsider testenv.User
	conv, msg               string
}

func newChat(t *testing.T) chat {
	t.Helper()
	c := chat{owner: testenv.NewUser(t), member: testenv.NewUser(t), outsider: testenv.NewUser(t)}
	db := testenv.DB(t)
	ctx := ctxT(t)
	must(t, "conversation", db.QueryRow(ctx, `insert into public.conversations (type, name, created_by)
	     values ('group', 'schematest', $1) returning id::text`, c.owner.ID).Scan(&c.conv))
	_, err := db.Exec(ctx, `insert into public.conversation_participants (conversation_id, user_id, role)
	     values ($1, $2, 'member')`, c.conv, c.member.ID)
	must(t, "participant", err)
	must(t, "message", db.QueryRow(ctx, `insert into public.messages (conversation_id, sender_id, encrypted_content)
	     values ($1, $2, '\x7b7d') returning id::text`, c.conv, c.owner.ID).Scan(&c.msg))
	_, err = db.Exec(ctx, `select public.fn_create_message_recipients($1, jsonb_build_object($2::text, 'b3duZXI=', $3::text, 'bWVtYmVy'))`,
		c.msg, c.owner.ID, c.member.ID)
	must(t, "recipients", err)
	_, err = db.Exec(ctx, `select public.fn_create_deliveries_for_message($1)`, c.msg)
	must(t, "deliveries", err)
	return c
}

func forgedToken(t *testing.T, u testenv.User) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, testenv.UserClaims(u, time.Hour))
	tok.Header["kid"] = devkeys.KID // same kid as the real key: only the signature differs
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wrongSecretHS256(t *testing.T, u testenv.User) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, testenv.UserClaims(u, time.Hour)).
		SignedString([]byte("not-the-secret-not-the-secret-not-the-secret"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Reads: who sees which rows of one conversation.
func TestRLSReadsThroughPostgREST(t *testing.T) {
	t.Parallel()
	api := newREST(t)
	c := newChat(t)
	owner, member, outsider := c.owner.Token(t, time.Hour), c.member.Token(t, time.Hour), c.outsider.Token(t, time.Hour)
	anonKey, serviceKey := devkeys.AnonKey(), devkeys.ServiceRoleKey()
	conv, msg := "conversation_id=eq."+c.conv, "message_id=eq."+c.msg

	const denied = -1 // no rows: either an empty array or a 401/403 refusal
	cases := []struct {
		name, token, path string
		wantRows          int
	}{
		{"owner reads the conversation", owner, "/conversations?id=eq." + c.conv, 1},
		{"member reads the conversation", member, "/conversations?id=eq." + c.conv, 1},
		{"member reads the participants", member, "/conversation_participants?" + conv, 2},
		{"member reads the messages", member, "/messages?" + conv, 1},
		{"member reads only their own copy", member, "/message_recipients?" + msg, 1},
		{"sender reads every copy", owner, "/message_recipients?" + msg, 2},
		{"member reads their delivery", member, "/deliveries?" + msg, 1},
		{"sender has no delivery", owner, "/deliveries?" + msg, 0},
		{"embeds by constraint name", member, "/messages?select=id,sender:users!messages_sender_id_fkey(id,username),message_recipients(recipient_user_id)&" + conv, 1},
		{"participants embed users", member, "/conversation_participants?select=user_id,users!conversation_participants_user_id_fkey(username)&" + conv, 2},
		{"member reads a profile's safe columns", member, "/users?select=id,username,display_name,avatar_url&id=eq." + c.owner.ID, 1},
		{"member cannot read phone numbers", member, "/users?select=phone_number&id=eq." + c.owner.ID, denied},
		{"member cannot select=* on users", member, "/users?id=eq." + c.owner.ID, denied},
		{"member cannot filter on phone numbers", member, "/users?select=id&phone_number=eq." + strings.TrimPrefix(c.owner.Phone, "+"), denied},
		{"outsider: conversation", outsider, "/conversations?id=eq." + c.conv, 0},
		{"outsider: participants", outsider, "/conversation_participants?" + conv, 0},
		{"outsider: messages", outsider, "/messages?" + conv, 0},
		{"outsider: recipient copies", outsider, "/message_recipients?" + msg, 0},
		{"outsider: deliveries", outsider, "/deliveries?" + msg, 0},
		{"outsider: message_status", outsider, "/message_status?" + msg, 0},
		{"anon key: conversations", anonKey, "/conversations", denied},
		{"anon key: participants", anonKey, "/conversation_participants", denied},
		{"anon key: messages", anonKey, "/messages", denied},
		{"anon key: recipient copies", anonKey, "/message_recipients", denied},
		{"anon key: deliveries", anonKey, "/deliveries", denied},
		{"anon key: users", anonKey, "/users?select=id,username", denied},
		{"no token: users", "", "/users?select=id", denied},
		{"no token: messages", "", "/messages", denied},
		{"service role: conversation", serviceKey, "/conversations?id=eq." + c.conv, 1},
		{"service role: every copy", serviceKey, "/message_recipients?" + msg, 2},
		{"service role: deliveries", serviceKey, "/deliveries?" + msg, 1},
		{"service role: phone numbers", serviceKey, "/users?select=phone_number,salt,backup_pin_hash&id=eq." + c.owner.ID, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, body := api.do(t, http.MethodGet, tc.path, tc.token, nil)
			got, isArray := rows(body)
			if tc.wantRows == denied {
				if (status == http.StatusOK && isArray && len(got) == 0) || status == http.StatusUnauthorized || status == http.StatusForbidden {
					return
				}
				t.Fatalf("GET %s = %d %s, want no rows", tc.path, status, body)
			}
			if status != http.StatusOK || !isArray || len(got) != tc.wantRows {
				t.Fatalf("GET %s = %d %s, want 200 with %d row(s)", tc.path, status, body, tc.wantRows)
			}
		})
	}
}

// Tokens PostgREST must refuse outright.
func TestPostgRESTRejectsBadTokens(t *testing.T) {
	t.Parallel()
	api := newREST(t)
	u := testenv.NewUser(t)
	valid := u.Token(t, time.Hour)
	parts := strings.Split(valid, ".")
	other := testenv.NewUser(t)
	otherParts := strings.Split(other.Token(t, time.Hour), ".")
	cases := []struct{ name, token string }{
		{"ES256 signed by another key", forgedToken(t, u)},
		{"HS256 with the wrong secret", wrongSecretHS256(t, u)},
		{"expired", u.Token(t, -time.Minute)},
		{"payload swapped under a valid signature", parts[0] + "." + otherParts[1] + "." + parts[2]},
		{"garbage", "not.a.jwt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if status, body := api.do(t, http.MethodGet, "/conversations?select=id&limit=1", tc.token, nil); status != http.StatusUnauthorized {
				t.Fatalf("status = %d %s, want 401", status, body)
			}
		})
	}
	if status, body := api.do(t, http.MethodGet, "/conversations?select=id&limit=1", valid, nil); status != http.StatusOK {
		t.Fatalf("valid token: %d %s, want 200", status, body)
	}
}

// Writes: what a user token may change.
func TestRLSWritesThroughPostgREST(t *testing.T) {
	t.Parallel()
	api := newREST(t)
	c := newChat(t)
	owner, member, outsider := c.owner.Token(t, time.Hour), c.member.Token(t, time.Hour), c.outsider.Token(t, time.Hour)
	post := func(tok, path string, body any) (int, []byte) {
		return api.do(t, http.MethodPost, path, tok, body)
	}
	steps := []struct {
		name   string
		run    func() (int, []byte)
		status int
	}{
		{"outsider cannot join the conversation", func() (int, []byte) {
			return post(outsider, "/conversation_participants", map[string]any{"conversation_id": c.conv, "user_id": c.outsider.ID})
		}, http.StatusForbidden},
		{"a plain member cannot add people", func() (int, []byte) {
			return post(member, "/conversation_participants", map[string]any{"conversation_id": c.conv, "user_id": c.outsider.ID})
		}, http.StatusForbidden},
		{"outsider cannot post into the conversation", func() (int, []byte) {
			return post(outsider, "/messages", map[string]any{"conversation_id": c.conv, "sender_id": c.outsider.ID, "encrypted_content": `\x7b7d`})
		}, http.StatusForbidden},
		{"member cannot post as the owner", func() (int, []byte) {
			return post(member, "/messages", map[string]any{"conversation_id": c.conv, "sender_id": c.owner.ID, "encrypted_content": `\x7b7d`})
		}, http.StatusForbidden},
		{"member posts as themselves", func() (int, []byte) {
			return post(member, "/messages", map[string]any{"conversation_id": c.conv, "sender_id": c.member.ID, "encrypted_content": `\x7b7d`})
		}, http.StatusCreated},
		{"member cannot make themselves admin", func() (int, []byte) {
			return api.do(t, http.MethodPatch, "/conversation_participants?conversation_id=eq."+c.conv+"&user_id=eq."+c.member.ID, member, map[string]any{"role": "admin"})
		}, http.StatusForbidden},
		{"member changes their own disappearing setting", func() (int, []byte) {
			return api.do(t, http.MethodPatch, "/conversation_participants?conversation_id=eq."+c.conv+"&user_id=eq."+c.member.ID,
				member, map[string]any{"disappear_seconds": 60, "start_on": "read"}, "Prefer", "return=representation")
		}, http.StatusOK},
		{"member marks their delivery read", func() (int, []byte) {
			return api.do(t, http.MethodPatch, "/deliveries?message_id=eq."+c.msg, member, map[string]any{"read_ts": time.Now().UTC()}, "Prefer", "return=representation")
		}, http.StatusOK},
		{"member cannot change their phone number", func() (int, []byte) {
			return api.do(t, http.MethodPatch, "/users?id=eq."+c.member.ID, member, map[string]any{"phone_number": "+15550000000"})
		}, http.StatusForbidden},
		{"member updates their own bio", func() (int, []byte) {
			return api.do(t, http.MethodPatch, "/users?id=eq."+c.member.ID, member, map[string]any{"bio": "hello", "sms_notifications_enabled": false}, "Prefer", "return=representation")
		}, http.StatusForbidden}, // return=representation selects phone_number etc.: the row cannot be returned
		{"member updates their own bio (explicit columns returned)", func() (int, []byte) {
			return api.do(t, http.MethodPatch, "/users?select=id,bio&id=eq."+c.member.ID, member, map[string]any{"bio": "hello"}, "Prefer", "return=representation")
		}, http.StatusOK},
		{"member updates their own bio (minimal return)", func() (int, []byte) {
			return api.do(t, http.MethodPatch, "/users?id=eq."+c.member.ID, member, map[string]any{"bio": "hello", "sms_notifications_enabled": false})
		}, http.StatusNoContent},
		{"owner adds the outsider", func() (int, []byte) {
			return post(owner, "/conversation_participants", map[string]any{"conversation_id": c.conv, "user_id": c.outsider.ID})
		}, http.StatusCreated},
		{"a user creates a conversation of their own", func() (int, []byte) {
			return post(outsider, "/conversations", map[string]any{"type": "direct", "created_by": c.outsider.ID})
		}, http.StatusCreated},
		{"a user cannot create one in someone else's name", func() (int, []byte) {
			return post(outsider, "/conversations", map[string]any{"type": "direct", "created_by": c.owner.ID})
		}, http.StatusForbidden},
		{"member leaves by deleting their row", func() (int, []byte) {
			return api.do(t, http.MethodDelete, "/conversation_participants?conversation_id=eq."+c.conv+"&user_id=eq."+c.member.ID, member, nil, "Prefer", "return=representation")
		}, http.StatusOK},
		{"after leaving the member cannot post", func() (int, []byte) {
			return post(member, "/messages", map[string]any{"conversation_id": c.conv, "sender_id": c.member.ID, "encrypted_content": `\x7b7d`})
		}, http.StatusForbidden},
	}
	for _, s := range steps { // sequential: each step builds on the previous ones
		status, body := s.run()
		if status != s.status {
			t.Fatalf("%s: status %d %s, want %d", s.name, status, body, s.status)
		}
		if s.status == http.StatusOK {
			if got, ok := rows(body); !ok || len(got) != 1 {
				t.Fatalf("%s: %s, want exactly one affected row", s.name, body)
			}
		}
	}
	// The creator trigger made the outsider admin of their new conversation, visible under their token.
	status, body := api.do(t, http.MethodGet, "/conversations?select=id,type,conversation_participants(user_id,role)&type=eq.direct&created_by=eq."+c.outsider.ID, outsider, nil)
	if got, _ := rows(body); status != http.StatusOK || len(got) != 1 || !strings.Contains(string(body), `"admin"`) {
		t.Fatalf("own new conversation = %d %s, want it with the creator as admin", status, body)
	}
}

func rpcPath(fn string) string { return "/rpc/" + fn }

// The hardened RPCs bind user callers to their own ids; the service role keeps full use.
func TestHardenedRPCs(t *testing.T) {
	t.Parallel()
	api := newREST(t)
	c := newChat(t)
	owner, member, outsider := c.owner.Token(t, time.Hour), c.member.Token(t, time.Hour), c.outsider.Token(t, time.Hour)
	serviceKey := devkeys.ServiceRoleKey()
	ok := func(s int) bool { return s == http.StatusOK || s == http.StatusNoContent }
	refused := func(s int) bool { return s == http.StatusForbidden }
	anonRefused := func(s int) bool { return s == http.StatusUnauthorized }

	cases := []struct {
		name, token, fn string
		args            map[string]any
		want            func(int) bool
		bodyHas         string
	}{
		{"archive someone else's", member, "archive_conversation", map[string]any{"conversation_uuid": c.conv, "user_uuid": c.owner.AuthID}, refused, ""},
		{"archive own", member, "archive_conversation", map[string]any{"conversation_uuid": c.conv, "user_uuid": c.member.AuthID}, ok, "true"},
		{"unarchive someone else's", outsider, "unarchive_conversation", map[string]any{"conversation_uuid": c.conv, "user_uuid": c.member.AuthID}, refused, ""},
		{"unarchive own", member, "unarchive_conversation", map[string]any{"conversation_uuid": c.conv, "user_uuid": c.member.AuthID}, ok, "true"},
		{"mark read for someone else", member, "fn_mark_message_read", map[string]any{"p_message_id": c.msg, "p_user_id": c.owner.ID}, refused, ""},
		{"mark read for self", member, "fn_mark_message_read", map[string]any{"p_message_id": c.msg, "p_user_id": c.member.ID}, ok, ""},
		{"deliveries for a message one did not send", member, "fn_create_deliveries_for_message", map[string]any{"p_message_id": c.msg}, refused, ""},
		{"deliveries by the sender", owner, "fn_create_deliveries_for_message", map[string]any{"p_message_id": c.msg}, ok, ""},
		{"deliveries by the sender again (idempotent)", owner, "fn_create_deliveries_for_message", map[string]any{"p_message_id": c.msg}, ok, ""},
		{"recipient copies for a message one did not send", outsider, "fn_create_message_recipients",
			map[string]any{"p_message_id": c.msg, "p_encrypted_contents": map[string]string{c.outsider.ID: "eA=="}}, refused, ""},
		{"activity of someone else", owner, "update_user_activity", map[string]any{"user_uuid": c.member.ID}, refused, ""},
		{"own activity", owner, "update_user_activity", map[string]any{"user_uuid": c.owner.ID}, ok, ""},
		{"someone else's public key", member, "upsert_user_public_key", map[string]any{"target_user_id": c.owner.AuthID, "public_key_param": "a2V5", "key_type_param": "ML-KEM-1024"}, refused, ""},
		{"own public key", owner, "upsert_user_public_key", map[string]any{"target_user_id": c.owner.AuthID, "public_key_param": "a2V5", "key_type_param": "ML-KEM-1024"}, ok, ""},
		{"anon public key", "", "upsert_user_public_key", map[string]any{"target_user_id": c.owner.AuthID, "public_key_param": "a2V5"}, anonRefused, ""},
		{"read a public key", member, "get_user_public_key", map[string]any{"target_user_id": c.owner.AuthID, "key_type_param": "ML-KEM-1024"}, ok, "a2V5"},
		{"someone else's conversation list", member, "get_user_conversations_enhanced", map[string]any{"user_uuid": c.owner.ID}, refused, ""},
		{"own conversation list", member, "get_user_conversations_enhanced", map[string]any{"user_uuid": c.member.ID}, ok, c.conv},
		{"someone else's groups", member, "get_user_groups", map[string]any{"user_uuid": c.owner.ID}, refused, ""},
		{"nuclear delete of someone else", outsider, "delete_encrypted_data_only", map[string]any{"authenticated_user_id": c.owner.ID, "target_user_id": c.owner.ID}, refused, ""},
		{"nuclear delete by anon", "", "delete_encrypted_data_only", map[string]any{"authenticated_user_id": c.owner.ID, "target_user_id": c.owner.ID}, anonRefused, ""},
		{"cleanup job is service-role only", owner, "fn_cleanup_expired_messages", map[string]any{}, refused, ""},
		{"cleanup job with the service role", serviceKey, "fn_cleanup_expired_messages", map[string]any{}, ok, ""},
		{"someone else's deliveries", outsider, "fn_get_user_active_deliveries", map[string]any{"p_user_id": c.owner.ID}, refused, ""},
		{"own deliveries", owner, "fn_get_user_active_deliveries", map[string]any{"p_user_id": c.owner.ID}, ok, ""},
		{"someone else's conversations (original RPC)", member, "get_user_conversations", map[string]any{"user_uuid": c.owner.ID}, refused, ""},
		{"own conversations (original RPC)", member, "get_user_conversations", map[string]any{"user_uuid": c.member.ID}, ok, c.conv},
		{"service role may act for a user", serviceKey, "update_user_activity", map[string]any{"user_uuid": c.member.ID}, ok, ""},
		{"own profile", owner, "get_my_profile", map[string]any{}, ok, c.owner.Phone},
		{"search finds others, phone masked", member, "search_users", map[string]any{"q": c.owner.Username}, ok, "***-***-" + c.owner.Phone[len(c.owner.Phone)-4:]},
		{"anon cannot search", "", "search_users", map[string]any{"q": c.owner.Username}, anonRefused, ""},
		{"by unique identifier", member, "find_user_by_unique_identifier", map[string]any{"identifier": "qryptchatNOPE0000"}, ok, "[]"},
	}
	for _, tc := range cases { // sequential: archive before unarchive, key upsert before read
		status, body := api.do(t, http.MethodPost, rpcPath(tc.fn), tc.token, tc.args)
		if !tc.want(status) || !strings.Contains(string(body), tc.bodyHas) {
			t.Errorf("%s: %s = %d %s", tc.name, tc.fn, status, body)
		}
	}

	// Search never returns the caller, nor a phone number in clear.
	_, body := api.do(t, http.MethodPost, rpcPath("search_users"), member, map[string]any{"q": c.member.Username})
	if strings.Contains(string(body), c.member.ID) || strings.Contains(string(body), strings.TrimPrefix(c.member.Phone, "+")) {
		t.Errorf("search_users returned the caller or a phone number: %s", body)
	}
	// A conversation the caller left is omitted from their list.
	db := testenv.DB(t)
	_, err := db.Exec(ctxT(t), `update public.conversation_participants set left_at = now() where conversation_id = $1 and user_id = $2`, c.conv, c.member.ID)
	must(t, "leave", err)
	_, body = api.do(t, http.MethodPost, rpcPath("get_user_conversations_enhanced"), member, map[string]any{"user_uuid": c.member.ID})
	if strings.Contains(string(body), c.conv) {
		t.Errorf("left conversation still listed: %s", body)
	}
	// Unread counts work under the user's token: the owner's conversation shows the member's new message.
	_, err = db.Exec(ctxT(t), `update public.conversation_participants set left_at = null where conversation_id = $1 and user_id = $2`, c.conv, c.member.ID)
	must(t, "rejoin", err)
	var newMsg string
	must(t, "message", db.QueryRow(ctxT(t), `insert into public.messages (conversation_id, sender_id, encrypted_content)
	     values ($1, $2, '\x7b7d') returning id::text`, c.conv, c.member.ID).Scan(&newMsg))
	if status, body := api.do(t, http.MethodPost, rpcPath("fn_create_deliveries_for_message"), member, map[string]any{"p_message_id": newMsg}); !ok(status) {
		t.Fatalf("deliveries for own message: %d %s", status, body)
	}
	_, body = api.do(t, http.MethodPost, rpcPath("get_user_conversations_enhanced"), owner, map[string]any{"user_uuid": c.owner.ID})
	list, _ := rows(body)
	found := false
	for _, r := range list {
		if r["conversation_id"] == c.conv {
			found = true
			if fmt.Sprint(r["unread_count"]) != "1" || r["last_message_sender_username"] != c.member.Username {
				t.Errorf("owner's row = %v, want unread_count 1 and the member as last sender", r)
			}
		}
	}
	if !found {
		t.Errorf("owner's list lacks the conversation: %s", body)
	}
}
