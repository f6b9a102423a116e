package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/middleware"
)

// rulesLimiter applies RateRules with a fixed clock; X-Test-IP and X-Test-User stand in for the client address and
// the verified identity.
func rulesLimiter() http.Handler {
	now := time.Unix(1_700_000_000, 0)
	return middleware.NewRateLimiter(middleware.RateLimitConfig{
		Rules:    RateRules(),
		Now:      func() time.Time { return now },
		ClientIP: func(r *http.Request) string { return r.Header.Get("X-Test-IP") },
		UserKey: func(r *http.Request) (string, bool) {
			u := r.Header.Get("X-Test-User")
			return u, u != ""
		},
	})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
}

// TestRateRulesBudgets checks every group of routes.md §2.2: the per-IP budget (a new User-Agent on every
// request), the per-IP+UA budget (one User-Agent), the per-user budgets, and the exact 429 body.
func TestRateRulesBudgets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, user string
		byIP                     int // allowed with a distinct UA each time (0 = no IP limit: only the user budget applies)
		byIPUA                   int // allowed with one UA
		msg                      string
	}{
		{"key-backup GET", "GET", "/api/auth/key-backup", "", 5, 3, rateMsgRestore},
		{"key-backup HEAD", "HEAD", "/api/auth/key-backup", "", 5, 3, rateMsgRestore},
		{"key-backup PUT is auth", "PUT", "/api/auth/key-backup", "", 10, 5, rateMsgDefault},
		{"auth", "POST", "/api/auth/verify-sms", "", 10, 5, rateMsgDefault},
		{"auth with user", "GET", "/api/auth/session", "u1", 10, 5, rateMsgDefault},
		{"webhooks", "POST", "/api/webhooks/telnyx/sms", "", 100, 100, rateMsgWebhooks},
		{"general anonymous", "POST", "/api/messages/send", "", 60, 30, rateMsgDefault},
		{"webhooks list is general", "GET", "/api/webhooks", "", 60, 30, rateMsgDefault},
		{"typing anonymous", "POST", "/api/typing/start", "", 60, 30, rateMsgDefault},
		{"events anonymous", "GET", "/api/events", "", 60, 30, rateMsgDefault},
		{"general user", "POST", "/api/messages/send", "u1", 0, 300, rateMsgDefault},
		{"typing user", "POST", "/api/typing/start", "u1", 0, 120, rateMsgDefault},
		{"events user", "GET", "/api/events", "u1", 0, 30, rateMsgDefault},
	}
	// allowed sends up to max+5 requests and returns how many passed before the first 429, checking its body.
	allowed := func(t *testing.T, h http.Handler, method, path, ip, user, msg string, max int, ua func(int) string) int {
		t.Helper()
		for i := range max + 5 {
			r := httptest.NewRequest(method, path, nil)
			r.Header.Set("User-Agent", ua(i))
			r.Header.Set("X-Test-IP", ip)
			if user != "" {
				r.Header.Set("X-Test-User", user)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code == http.StatusOK {
				continue
			}
			if w.Code != http.StatusTooManyRequests || w.Body.String() != `{"error":"`+msg+`"}` {
				t.Fatalf("request %d: %d %s", i+1, w.Code, w.Body.String())
			}
			return i
		}
		return max + 5
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			oneUA := func(int) string { return "Mozilla/5.0" }
			if got := allowed(t, rulesLimiter(), tt.method, tt.path, "203.0.113.7", tt.user, tt.msg, tt.byIPUA, oneUA); got != tt.byIPUA {
				t.Errorf("one UA: allowed %d, want %d", got, tt.byIPUA)
			}
			if tt.byIP > 0 {
				newUA := func(i int) string { return "agent/" + strconv.Itoa(i) }
				if got := allowed(t, rulesLimiter(), tt.method, tt.path, "203.0.113.8", tt.user, tt.msg, tt.byIP, newUA); got != tt.byIP {
					t.Errorf("UA per request: allowed %d, want %d", got, tt.byIP)
				}
			}
		})
	}
}
