package api_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestAccountRoutesAuthorization: the account, settings, keys, cleanup and webhook routes act only on the caller's
// own data. For each route: no credentials → 401, an expired token → 401, and another signed-in user's call —
// aimed at the owner's data wherever the route takes an id or phone — leaves the owner's data as it was.
func TestAccountRoutesAuthorization(t *testing.T) {
	h := newHarness(t)
	owner, other, third := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
	ot := owner.Token(t, time.Hour)
	ctx := context.Background()

	// The owner's data.
	mustStatus(t, h.do("POST", "/api/auth/backup-pin", ot, map[string]any{"pin": "123456"}), 200)
	mustStatus(t, h.do("POST", "/api/auth/salt", ot, map[string]any{"phone": owner.Phone, "salt": "owner-salt"}), 200)
	mustStatus(t, h.do("PUT", "/api/crypto/public-keys", ot, map[string]any{"public_key": "owner-key", "key_type": "ML-KEM-1024"}), 200)
	mustStatus(t, h.do("PUT", "/api/auth/key-backup", ot, map[string]any{"encrypted_keys": `{"k":1}`}), 200)
	mustStatus(t, h.do("POST", "/api/profile/update", ot, map[string]any{"bio": "owner bio"}), 200)
	mustStatus(t, h.do("PUT", "/api/settings/disappearing-messages", ot, map[string]any{"default_message_retention_days": 7}), 200)
	r := h.do("POST", "/api/webhooks", ot, map[string]any{"url": "https://hooks.example.com/o", "events": []string{"message.created"}})
	mustStatus(t, r, 201)
	hook := r.JSON(t)["webhook"].(map[string]any)["id"].(string)
	r = h.do("POST", "/api/chat/conversations", ot, map[string]any{"type": "group", "participant_ids": []string{third.ID}})
	mustStatus(t, r, 200)
	emptyConv := r.JSON(t)["conversation_id"].(string)
	db := testenv.DB(t)
	if _, err := db.Exec(ctx, `update users set avatar_url = 'https://a.example/o.png' where id = $1`, owner.ID); err != nil {
		t.Fatal(err)
	}

	type row struct {
		name         string
		method, path string
		body         any
		anonStatus   int // what anonymous and expired callers get
	}
	rows := []row{
		{"backup-pin GET", "GET", "/api/auth/backup-pin", nil, 401},
		{"backup-pin POST", "POST", "/api/auth/backup-pin", map[string]any{"pin": "999999"}, 401},
		{"salt GET (owner's phone)", "GET", "/api/auth/salt?phone=" + url.QueryEscape(owner.Phone), nil, 401},
		{"salt POST (owner's phone)", "POST", "/api/auth/salt", map[string]any{"phone": owner.Phone, "salt": "evil"}, 401},
		{"key-backup GET", "GET", "/api/auth/key-backup", nil, 401},
		{"key-backup PUT", "PUT", "/api/auth/key-backup", map[string]any{"encrypted_keys": `{"evil":1}`}, 401},
		{"upload-avatar DELETE", "DELETE", "/api/auth/upload-avatar", nil, 401},
		{"profile/update", "POST", "/api/profile/update", map[string]any{"bio": "evil"}, 401},
		{"user/profile/{owner}", "GET", "/api/user/profile/" + owner.AuthID, nil, 401},
		{"settings PUT", "PUT", "/api/settings/disappearing-messages", map[string]any{"default_message_retention_days": 1}, 401},
		{"keys/delete", "POST", "/api/keys/delete", nil, 401},
		{"keys/reset", "POST", "/api/keys/reset", map[string]any{"publicKey": "evil-key"}, 401},
		{"public-keys PUT", "PUT", "/api/crypto/public-keys", map[string]any{"public_key": "evil-key"}, 401},
		{"webhooks DELETE (owner's)", "DELETE", "/api/webhooks/" + hook, nil, 401},
		{"cleanup empty-conversations", "DELETE", "/api/cleanup/empty-conversations", nil, 401},
		{"cleanup legacy-keys", "DELETE", "/api/cleanup/legacy-keys", nil, 401},
		{"nuclear-delete", "DELETE", "/api/user/nuclear-delete", map[string]any{"confirmation": "DELETE_ALL_MY_DATA"}, 401},
	}
	expired := owner.Token(t, -time.Hour)
	for _, rw := range rows {
		for _, tok := range []string{"", expired} {
			if r := h.do(rw.method, rw.path, tok, rw.body); r.Status != rw.anonStatus {
				t.Errorf("%s with token %q…: %d %s, want %d", rw.name, prefix(tok), r.Status, r.Body, rw.anonStatus)
			}
		}
		r := h.do(rw.method, rw.path, other.Token(t, time.Hour), rw.body)
		if r.Status >= 500 {
			t.Errorf("%s as another user: %d %s", rw.name, r.Status, r.Body)
		}
	}

	// After all of that, the owner's data is untouched.
	var pinHash, salt, bio, avatar *string
	var retention int
	if err := db.QueryRow(ctx, `select backup_pin_hash, salt, bio, avatar_url, default_message_retention_days from users where id = $1`,
		owner.ID).Scan(&pinHash, &salt, &bio, &avatar, &retention); err != nil {
		t.Fatal(err)
	}
	if pinHash == nil || salt == nil || *salt != "owner-salt" || bio == nil || *bio != "owner bio" || avatar == nil || retention != 7 {
		t.Fatalf("owner's row changed: pin %v salt %v bio %v avatar %v retention %d", pinHash != nil, deref(salt), deref(bio), deref(avatar), retention)
	}
	checks := map[string]string{
		"public key": `select count(*) from user_public_keys where user_id = $1 and public_key = 'owner-key'`,
		"key backup": `select count(*) from key_backups where user_id = $1 and encrypted_keys = '{"k":1}'`,
		"webhook":    `select count(*) from webhooks where user_id = $1`,
	}
	for what, q := range checks {
		var n int
		if err := db.QueryRow(ctx, q, owner.AuthID).Scan(&n); err != nil || n != 1 {
			t.Errorf("owner's %s gone or changed (count %d, err %v)", what, n, err)
		}
	}
	var convs int
	if err := db.QueryRow(ctx, `select count(*) from conversations where id = $1`, emptyConv).Scan(&convs); err != nil || convs != 1 {
		t.Errorf("owner's empty conversation deleted by another user's cleanup (count %d, err %v)", convs, err)
	}
	// And the other user's GET of the owner's profile path answered the other user's own row.
	r = h.do("GET", "/api/user/profile/"+owner.AuthID, other.Token(t, time.Hour), nil)
	mustStatus(t, r, 200)
	if u := r.JSON(t)["user"].(map[string]any); u["id"] != other.ID || u["backup_pin_hash"] != nil {
		t.Fatalf("profile answer %s", r.Body)
	}
}

func prefix(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
