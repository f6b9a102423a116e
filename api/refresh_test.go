package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestConcurrentRefreshOneExchange: ten concurrent requests carrying the same expired cookie session (a real
// session from the real Supabase Auth, with its access token swapped for an expired one) all succeed and cause
// exactly one refresh-token exchange at Auth — a second exchange would have been refused (the token is single-use)
// and, past the reuse window, would have logged the user out everywhere. Auth's own table counts the exchanges:
// with rotation on, each one revokes the presented token and issues a child of it.
func TestConcurrentRefreshOneExchange(t *testing.T) {
	h := newHarness(t)
	phone := testenv.TestPhone(t)
	mustStatus(t, h.do("POST", "/api/auth/send-sms", "", map[string]any{"phoneNumber": phone}), 200)
	r := h.do("POST", "/api/auth/verify-sms", "", map[string]any{"phoneNumber": phone, "verificationCode": "123456",
		"username": "r_" + testenv.RandomHex(5)})
	mustStatus(t, r, 200)
	sess := r.JSON(t)["session"].(map[string]any)
	refresh := sess["refresh_token"].(string)
	authID := sess["user"].(map[string]any)["id"].(string)
	sess["access_token"] = testenv.User{AuthID: authID, Phone: phone}.Token(t, -time.Minute)
	raw, _ := json.Marshal(sess)
	cookie := "base64-" + base64.RawURLEncoding.EncodeToString(raw)

	var wg sync.WaitGroup
	results := make([]resp, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.withCookie("GET", "/api/chat/conversations", cookie, nil)
		}()
	}
	wg.Wait()
	var newTokens = map[string]bool{}
	for i, res := range results {
		if res.Status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, res.Status, res.Body)
		}
		for _, c := range setCookies(res) {
			newTokens[c.Value] = true
		}
	}
	if len(newTokens) != 1 {
		t.Fatalf("the ten answers wrote %d different cookies, want the same one", len(newTokens))
	}
	var children, revoked int
	err := testenv.DB(t).QueryRow(context.Background(),
		`select count(*) filter (where parent = $1), count(*) filter (where token = $1 and revoked)
		   from auth.refresh_tokens where token = $1 or parent = $1`, refresh).Scan(&children, &revoked)
	if err != nil {
		t.Fatal(err)
	}
	if children != 1 || revoked != 1 {
		t.Fatalf("refresh token exchanged %d times at Auth (revoked: %d), want exactly 1", children, revoked)
	}
}
