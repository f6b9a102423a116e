package api_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestKeyRoutes covers /api/crypto/public-keys (GET, POST, PUT), /api/crypto/public-keys/all, /api/keys/delete and
// /api/keys/reset (routes.md §5).
func TestKeyRoutes(t *testing.T) {
	h := newHarness(t)

	t.Run("PUT then GET and POST", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b, nokey := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		key := "pk-" + testenv.RandomHex(16)
		r := h.do("PUT", "/api/crypto/public-keys", tok, map[string]any{"public_key": key, "key_type": "ML-KEM-1024"})
		mustStatus(t, r, 200)
		body := r.JSON(t)
		if keysOf(body) != "key_id,message,success" || body["success"] != true || body["message"] != "Public key synced successfully" ||
			len(body["key_id"].(string)) != 36 {
			t.Fatalf("PUT: %s", r.Body)
		}
		// Stored under the caller's auth uid.
		if got := dbScalar[string](t, `select public_key from user_public_keys where user_id = $1 and key_type = 'ML-KEM-1024'`, a.AuthID); got != key {
			t.Fatalf("stored key %q", got)
		}
		// key_type defaults (a falsy one too); a second PUT replaces the key.
		key2 := key + "-2"
		mustStatus(t, h.do("PUT", "/api/crypto/public-keys", tok, map[string]any{"public_key": key2, "key_type": ""}), 200)
		if n := dbScalar[int64](t, `select count(*) from user_public_keys where user_id = $1`, a.AuthID); n != 1 {
			t.Fatalf("%d key rows after re-sync", n)
		}
		wantBody(t, h.do("GET", "/api/crypto/public-keys?user_id="+a.ID, b.Token(t, time.Hour), nil), 200,
			`{"public_key":"`+key2+`","user_id":"`+a.ID+`"}`)
		wantBody(t, h.do("GET", "/api/crypto/public-keys?user_id="+nokey.ID, b.Token(t, time.Hour), nil), 200,
			`{"public_key":null,"user_id":"`+nokey.ID+`"}`)
		wantBody(t, h.do("GET", "/api/crypto/public-keys?user_id=00000000-0000-4000-8000-000000000000", b.Token(t, time.Hour), nil),
			200, `{"public_key":null}`)
		wantBody(t, h.do("GET", "/api/crypto/public-keys?user_id=nope", b.Token(t, time.Hour), nil), 200, `{"public_key":null}`)
		r = h.do("POST", "/api/crypto/public-keys", b.Token(t, time.Hour), map[string]any{"user_ids": []any{a.ID, nokey.ID,
			"00000000-0000-4000-8000-000000000000", "junk", a.ID}})
		wantBody(t, r, 200, `{"public_keys":{"`+a.ID+`":"`+key2+`","`+nokey.ID+`":null,"00000000-0000-4000-8000-000000000000":null,"junk":null}}`)
		wantBody(t, h.do("POST", "/api/crypto/public-keys", b.Token(t, time.Hour), map[string]any{"user_ids": []string{}}), 200,
			`{"public_keys":{}}`)
		// /all: a bare array of auth-uid entries.
		r = h.do("GET", "/api/crypto/public-keys/all", b.Token(t, time.Hour), nil)
		mustStatus(t, r, 200)
		if !strings.HasPrefix(string(r.Body), "[") {
			t.Fatalf("/all is not a bare array: %.200s", r.Body)
		}
		if !strings.Contains(string(r.Body), `{"user_id":"`+a.AuthID+`","public_key":"`+key2+`"}`) {
			t.Fatalf("/all lacks the key of %s", a.AuthID)
		}
	})

	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a := testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		for _, c := range []struct{ method, path string }{{"GET", "/api/crypto/public-keys?user_id=" + a.ID},
			{"POST", "/api/crypto/public-keys"}, {"PUT", "/api/crypto/public-keys"}, {"GET", "/api/crypto/public-keys/all"}} {
			wantErr(t, h.do(c.method, c.path, "", map[string]any{}), 401, "Unauthorized")
			wantErr(t, h.do(c.method, c.path, a.Token(t, -time.Minute), map[string]any{}), 401, "Unauthorized")
		}
		wantErr(t, h.do("GET", "/api/crypto/public-keys", tok, nil), 400, "Missing user_id parameter")
		wantErr(t, h.do("GET", "/api/crypto/public-keys?user_id=", tok, nil), 400, "Missing user_id parameter")
		for _, ids := range []any{nil, "x", map[string]any{}, 5} {
			wantErr(t, h.do("POST", "/api/crypto/public-keys", tok, map[string]any{"user_ids": ids}), 400, "Missing or invalid user_ids array")
		}
		many := make([]string, 501)
		for i := range many {
			many[i] = "00000000-0000-4000-8000-000000000000"
		}
		wantErr(t, h.do("POST", "/api/crypto/public-keys", tok, map[string]any{"user_ids": many}), 400, "Too many user_ids")
		for _, k := range []any{nil, "", false, 0} {
			wantErr(t, h.do("PUT", "/api/crypto/public-keys", tok, map[string]any{"public_key": k}), 400, "Missing public_key")
		}
		r := h.do("PUT", "/api/crypto/public-keys", tok, map[string]any{"public_key": "k", "key_type": strings.Repeat("x", 51)})
		mustStatus(t, r, 400)
		checkClean(t, r)
		if n := dbScalar[int64](t, `select count(*) from user_public_keys where user_id = $1`, a.AuthID); n != 0 {
			t.Fatalf("refused PUTs stored %d keys", n)
		}
	})

	t.Run("keys/delete and keys/reset", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, other := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		wantErr(t, h.do("POST", "/api/keys/delete", "", nil), 401, "Authentication required")
		wantErr(t, h.rawReq("POST", "/api/keys/reset", "", "application/json", []byte(`{}`)), 401, "Authentication required")
		for _, body := range []any{map[string]any{}, nil, map[string]any{"publicKey": ""}, map[string]any{"publicKey": 5}} {
			wantErr(t, h.do("POST", "/api/keys/reset", tok, body), 400, "Missing required field: publicKey")
		}
		mustStatus(t, h.do("PUT", "/api/crypto/public-keys", other.Token(t, time.Hour), map[string]any{"public_key": "theirs"}), 200)
		wantBody(t, h.do("POST", "/api/keys/reset", tok, map[string]any{"publicKey": "reset-key"}), 200,
			`{"success":true,"message":"Public key updated successfully"}`)
		if got := dbScalar[string](t, `select public_key from user_public_keys where user_id = $1 and key_type = 'ML-KEM-1024'`, a.AuthID); got != "reset-key" {
			t.Fatalf("reset stored %q", got)
		}
		wantBody(t, h.do("POST", "/api/keys/delete", tok, nil), 200, `{"success":true,"message":"Public key deleted successfully"}`)
		if n := dbScalar[int64](t, `select count(*) from user_public_keys where user_id = $1`, a.AuthID); n != 0 {
			t.Fatal("key survived keys/delete")
		}
		if n := dbScalar[int64](t, `select count(*) from user_public_keys where user_id = $1`, other.AuthID); n != 1 {
			t.Fatal("keys/delete touched another user's key")
		}
		// Deleting when there is nothing is still a success.
		wantBody(t, h.do("POST", "/api/keys/delete", tok, nil), 200, `{"success":true,"message":"Public key deleted successfully"}`)
	})
}

// TestCleanupRoutes covers DELETE /api/cleanup/* (routes.md §9.1), scoped to the caller.
func TestCleanupRoutes(t *testing.T) {
	h := newHarness(t)

	t.Run("auth", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		for _, p := range []string{"/api/cleanup/empty-conversations", "/api/cleanup/legacy-keys", "/api/cleanup/legacy-messages"} {
			wantBody(t, h.do("DELETE", p, "", nil), 401, `{"error":"Unauthorized - No valid session","details":"Please login again"}`)
		}
		noProfile := testenv.NewAuthUserNoProfile(t).Token(t, time.Hour)
		wantErr(t, h.do("DELETE", "/api/cleanup/empty-conversations", noProfile, nil), 404, "User not found")
		wantErr(t, h.do("DELETE", "/api/cleanup/legacy-messages", noProfile, nil), 404, "User not found")
	})

	t.Run("empty conversations", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		emptyMine := newConv(t, h, "group", a, b)
		busy := newConv(t, h, "direct", a, b)
		sendText(t, h, a, busy, "x", b)
		emptyTheirs := newConv(t, h, "group", b, a)
		note := noteToSelf(t, h, tok)
		wantBody(t, h.do("DELETE", "/api/cleanup/empty-conversations", tok, nil), 200,
			`{"message":"Successfully deleted empty conversations","deletedCount":1}`)
		for id, want := range map[string]int64{emptyMine: 0, busy: 1, emptyTheirs: 1, note: 1} {
			if n := dbScalar[int64](t, `select count(*) from conversations where id = $1`, id); n != want {
				t.Fatalf("conversation %s: %d rows, want %d", id, n, want)
			}
		}
		wantBody(t, h.do("DELETE", "/api/cleanup/empty-conversations", tok, nil), 200,
			`{"message":"No empty conversations found","deletedCount":0}`)
	})

	t.Run("legacy keys", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, other := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		wantBody(t, h.do("DELETE", "/api/cleanup/legacy-keys", tok, nil), 200, `{"message":"No legacy keys found","updatedCount":0}`)
		mustStatus(t, h.do("PUT", "/api/crypto/public-keys", tok, map[string]any{"public_key": "short-legacy", "key_type": "X25519"}), 200)
		modern := base64.StdEncoding.EncodeToString(make([]byte, 1568))
		mustStatus(t, h.do("PUT", "/api/crypto/public-keys", tok, map[string]any{"public_key": modern}), 200)
		mustStatus(t, h.do("PUT", "/api/crypto/public-keys", other.Token(t, time.Hour), map[string]any{"public_key": "also-legacy"}), 200)
		wantBody(t, h.do("DELETE", "/api/cleanup/legacy-keys", tok, nil), 200,
			`{"message":"Successfully deleted legacy keys","deletedCount":1,"totalLegacyKeys":1}`)
		if n := dbScalar[int64](t, `select count(*) from user_public_keys where user_id = $1`, a.AuthID); n != 1 {
			t.Fatalf("%d keys left, want the ML-KEM-1024-sized one", n)
		}
		if n := dbScalar[int64](t, `select count(*) from user_public_keys where user_id = $1`, other.AuthID); n != 1 {
			t.Fatal("another user's legacy key was deleted")
		}
	})

	t.Run("legacy messages", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		conv := newConv(t, h, "direct", a, b)
		wantBody(t, h.do("DELETE", "/api/cleanup/legacy-messages", tok, nil), 200, `{"message":"No legacy messages found","deletedCount":0}`)
		legacy := sendText(t, h, a, conv, "FALLBACK-encrypted", b)
		old := sendText(t, h, a, conv, "ML-KEM-768 payload", b)
		fresh := sendText(t, h, a, conv, "ML-KEM-1024 payload", b)
		theirs := sendText(t, h, b, conv, "FALLBACK from b", a)
		wantBody(t, h.do("DELETE", "/api/cleanup/legacy-messages", tok, nil), 200,
			`{"message":"Successfully deleted legacy messages","deletedCount":2}`)
		for id, want := range map[any]int64{legacy["id"]: 0, old["id"]: 0, fresh["id"]: 1, theirs["id"]: 1} {
			if n := dbScalar[int64](t, `select count(*) from messages where id = $1`, id); n != want {
				t.Fatalf("message %v: %d rows, want %d", id, n, want)
			}
		}
	})
}
