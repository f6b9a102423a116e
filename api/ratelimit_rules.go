package api

import (
	"net/http"
	"time"

	"github.com/qryptchat/suparelay/middleware"
)

// The 429 texts of routes.md §2.2, exactly.
const (
	rateMsgRestore  = "Too many restore attempts. Try again later."
	rateMsgDefault  = "Too many requests. Please try again later."
	rateMsgWebhooks = "Too many requests"
)

// RateRules are the /api rate limits of routes.md §2.2 with its required changes, declared here beside the routes
// they govern (middleware.NewRateLimiter applies them): the original's key-backup, auth and webhook budgets (keyed
// on the real client address), typing and the SSE stream in buckets of their own, and the general bucket keyed
// per authenticated user with a budget normal use cannot reach. The first matching rule wins.
func RateRules() []middleware.RateRule {
	anon := []middleware.RateLimit{{Kind: middleware.RateByIP, Limit: 60, Window: time.Minute},
		{Kind: middleware.RateByIPUA, Limit: 30, Window: time.Minute}}
	return []middleware.RateRule{
		{Name: "key-backup", Method: http.MethodGet, Path: "/api/auth/key-backup", Message: rateMsgRestore,
			Limits: []middleware.RateLimit{{Kind: middleware.RateByIP, Limit: 5, Window: time.Hour},
				{Kind: middleware.RateByIPUA, Limit: 3, Window: time.Hour}}},
		{Name: "auth", Path: "/api/auth/", Prefix: true, Message: rateMsgDefault,
			Limits: []middleware.RateLimit{{Kind: middleware.RateByIP, Limit: 10, Window: time.Minute},
				{Kind: middleware.RateByIPUA, Limit: 5, Window: time.Minute}}},
		{Name: "webhooks", Path: "/api/webhooks/", Prefix: true, Message: rateMsgWebhooks,
			Limits: []middleware.RateLimit{{Kind: middleware.RateByIP, Limit: 100, Window: time.Minute}}},
		{Name: "typing", Path: "/api/typing/", Prefix: true, Message: rateMsgDefault,
			Limits: anon, UserLimits: []middleware.RateLimit{{Kind: middleware.RateByUser, Limit: 120, Window: time.Minute}}},
		{Name: "events", Path: "/api/events", Message: rateMsgDefault,
			Limits: anon, UserLimits: []middleware.RateLimit{{Kind: middleware.RateByUser, Limit: 30, Window: time.Minute}}},
		{Name: "api", Path: "/api/", Prefix: true, Message: rateMsgDefault,
			Limits: anon, UserLimits: []middleware.RateLimit{{Kind: middleware.RateByUser, Limit: 300, Window: time.Minute}}},
	}
}
