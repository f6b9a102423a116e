package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qryptchat/suparelay/api"
	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
)

// testServerConfig says where the in-process API of a test finds Supabase and how it is wired; zero values are the
// usual test wiring.
type testServerConfig struct {
	SupabaseURL string        // Supabase (the stack's gateway, an unreachable address, a test double of a fault)
	JWKSURL     string        // default: SupabaseURL + /auth/v1/.well-known/jwks.json
	Timeout     time.Duration // every Supabase call; default 10 s
	Logger      *slog.Logger  // default: discarded
	Adjust      func(*api.Config)
}

// testServer is the real API handler set on an httptest server, with the collaborators cmd/suparelay would give it
// (PostgREST/Auth/Storage client, JWKS+HS256 verifier, authenticator with refresh, memory-broker hub).
type testServer struct {
	srv *httptest.Server
	hub *relay.Hub
}

// newTestServer builds and starts the API for tb; everything is shut down when tb ends.
func newTestServer(tb testing.TB, c testServerConfig) *testServer {
	tb.Helper()
	if c.JWKSURL == "" {
		c.JWKSURL = c.SupabaseURL + "/auth/v1/.well-known/jwks.json"
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	client, err := supa.New(supa.Config{URL: c.SupabaseURL, AnonKey: devkeys.AnonKey(), ServiceRoleKey: devkeys.ServiceRoleKey(),
		Timeout: c.Timeout})
	if err != nil {
		tb.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	verifier, err := middleware.NewVerifier(ctx, middleware.VerifierConfig{JWKSURL: c.JWKSURL, HS256Secret: devkeys.JWTSecret,
		Audience: "authenticated", Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	hub := relay.NewHub(relay.NewMemoryBroker(relay.MemoryBrokerConfig{}), relay.HubConfig{}, quiet, prometheus.NewRegistry())
	if err := hub.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	auth, err := middleware.NewAuthenticator(middleware.AuthConfig{Verifier: verifier, Refresher: client,
		CookieName: "sb-127-auth-token", Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := api.Config{Supa: client, Hub: hub, Auth: auth, Verifier: verifier, Logger: c.Logger,
		PublicSupabaseURL: "https://public.example.test", CookieName: "sb-127-auth-token", Registry: prometheus.NewRegistry()}
	if c.Adjust != nil {
		c.Adjust(&cfg)
	}
	srv := httptest.NewServer(api.New(cfg).Routes())
	tb.Cleanup(func() {
		sctx, done := context.WithTimeout(context.Background(), 2*time.Second)
		defer done()
		hub.Shutdown(sctx)
		srv.Close()
	})
	return &testServer{srv: srv, hub: hub}
}

// deadSupabase is an address where nothing listens: every Supabase call fails at once.
const deadSupabase = "http://127.0.0.1:1"
