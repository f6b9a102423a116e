package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestConcurrentRefreshOneExchange: ten concurrent requests carrying the same expired cookie session (a real
// session from the real Auth stand-in, with its access token swapped for an expired one) all succeed and cause
// exactly one refresh-token exchange at Auth — a second exchange would have been refused (the token is single-use)
// and, past the reuse window, would have logged the user out everywhere.
func TestConcurrentRefreshOneExchange(t *testing.T) {
	h := newHarness(t)
	gw := testenv.SupabaseURL(t)
	phone := freshPhone()
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
	req, _ := http.NewRequest("GET", gw+"/auth/v1/_dev/stats?refresh_token="+url.QueryEscape(refresh), nil)
	req.Header.Set("apikey", devkeys.AnonKey())
	res, err := isolatedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var stats struct {
		TokenExchanges int `json:"token_exchanges"`
	}
	if err := json.NewDecoder(res.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	if stats.TokenExchanges != 1 {
		t.Fatalf("refresh token exchanged %d times at Auth, want exactly 1", stats.TokenExchanges)
	}
}
