// Command suparelay serves QryptChat's /api routes and its Server-Sent Events stream in front of Supabase.
//
// It reads its configuration from the environment (and .env), verifies Supabase-issued tokens locally, forwards
// every data operation to PostgREST under the caller's own token, and relays chat events to browsers. It starts even
// when Supabase is unreachable: /readyz then answers 503 until PostgREST and the signing keys are reachable.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/api"
	"github.com/qryptchat/suparelay/frontdoor"
	"github.com/qryptchat/suparelay/internal/idlepark"
	"github.com/qryptchat/suparelay/internal/netpoll"
	"github.com/qryptchat/suparelay/jobs"
	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
	"github.com/qryptchat/suparelay/webhooks"
)

func main() {
	if err := loadDotEnv(".env"); err != nil {
		fmt.Fprintln(os.Stderr, "suparelay: .env:", err)
		os.Exit(2)
	}
	cfg, err := LoadConfig(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "suparelay: configuration is invalid:\n%v\nSee .env.example for every setting.\n", err)
		os.Exit(2)
	}
	log := newLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := NewMain(ctx, cfg, log)
	if err != nil {
		log.Error("startup failed", "err", err)
		os.Exit(1)
	}
	if err := m.Run(ctx); err != nil {
		log.Error("server stopped with an error", "err", err)
		os.Exit(1)
	}
}

// newLogger logs text on a terminal and JSON otherwise.
func newLogger(w *os.File, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" || (format == "auto" && isTerminal(w)) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Main owns every long-lived part of the server.
type Main struct {
	cfg      Config
	log      *slog.Logger
	hub      *relay.Hub
	broker   relay.Broker
	redis    redis.UniversalClient
	rlRedis  redis.UniversalClient // the rate limits' own client (deadlines honoured); nil without Redis or limits
	server   *http.Server
	listener net.Listener
	api      *api.Server
	webhooks *webhooks.Deliverer
	expiry   *jobs.Runner
	registry *prometheus.Registry            // everything /metrics exports
	netpoll  *netpoll.Watcher                // hang-ups of detached streams, idle keep-alive connections; nil off Linux
	parker   atomic.Pointer[idlepark.Parker] // set by Listen when HTTP_PARK_IDLE is on
}

// NewMain builds the server from cfg. Nothing here needs Supabase or Redis to be up.
func NewMain(ctx context.Context, cfg Config, log *slog.Logger) (*Main, error) {
	m := &Main{cfg: cfg, log: log}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registry = reg

	client, err := supa.New(supa.Config{URL: cfg.SupabaseURL, AnonKey: cfg.AnonKey, ServiceRoleKey: cfg.ServiceRoleKey,
		Timeout: cfg.SupabaseTimeout, MaxConcurrent: cfg.SupabaseMaxConcurrent, QueueWait: cfg.SupabaseQueueWait,
		Observe: newUpstreamMetrics(reg)})
	if err != nil {
		return nil, err
	}
	verifier, err := middleware.NewVerifier(ctx, middleware.VerifierConfig{
		JWKSURL: cfg.JWKSURL, HS256Secret: cfg.JWTSecret, Issuer: cfg.JWTIssuer, Audience: "authenticated", Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("token verifier: %w", err)
	}
	var shared middleware.SharedStore
	if cfg.RedisURL != "" {
		if m.redis, err = openRedis(cfg.RedisURL, cfg.RedisCluster, false); err != nil {
			return nil, err
		}
		shared = middleware.NewRedisSharedStore(m.redis, cfg.redisKeys("auth:"))
		// One hash tag for every relay key: its scripts touch several keys at once, which a Redis Cluster allows only
		// within one slot (the log and memberships then live on one master; they are small).
		m.broker = relay.NewRedisBroker(m.redis, relay.RedisBrokerConfig{Prefix: cfg.redisKeys("{relay}:"), Logger: log,
			HistorySize: cfg.SSEHistorySize, HistoryTTL: cfg.SSEHistoryTTL, HistoryMaxBytes: cfg.SSEHistoryMaxBytes})
	} else {
		m.broker = relay.NewMemoryBroker(relay.MemoryBrokerConfig{HistorySize: cfg.SSEHistorySize, HistoryTTL: cfg.SSEHistoryTTL,
			HistoryMaxBytes: cfg.SSEHistoryMaxBytes})
	}
	if cfg.SSEDetach || cfg.ParkIdleConns {
		// One epoll instance notices every detached client hanging up, instead of a reader goroutine per stream
		// (~4 KiB each), and every parked keep-alive connection's next request. Off Linux it is absent: the hub
		// keeps the goroutines and net/http the idle connections.
		if m.netpoll, err = netpoll.New(); err != nil {
			log.Warn("epoll watcher unavailable: a reader goroutine per detached stream, no idle parking", "err", err)
			m.netpoll = nil
		}
	}
	m.hub = relay.NewHub(m.broker, relay.HubConfig{
		Heartbeat: cfg.SSEHeartbeat, RoomGrace: cfg.SSERoomGrace, MaxStreamsPerUser: cfg.SSEMaxPerUser,
		MaxStreamsPerNode: cfg.SSEMaxStreams, HistorySize: cfg.SSEHistorySize, HistoryTTL: cfg.SSEHistoryTTL,
		HistoryMaxBytes: cfg.SSEHistoryMaxBytes,
		// Detached HTTP/1.1 streams hold ~12 KiB instead of ~28 KiB (relay/BENCHMARKS.md); the access log then
		// records only the stream's set-up, and Run ends streams through hub.Shutdown before draining HTTP.
		DetachHTTP1: cfg.SSEDetach, Presence: cfg.SSEPresence, CloseWatcher: m.watcherIf(cfg.SSEDetach),
		LeanStreams: cfg.SSELean,
	}, log, reg)

	cookie := cfg.CookieName
	if cookie == "" {
		cookie = middleware.CookieNameFromURL(cfg.PublicSupabaseURL)
	}
	auth, err := middleware.NewAuthenticator(middleware.AuthConfig{
		Verifier: verifier, Refresher: client, CookieName: cookie, SecureCookies: cfg.SecureCookies,
		Logger: log, Shared: shared,
	})
	if err != nil {
		return nil, fmt.Errorf("authenticator: %w", err)
	}
	// Webhook deliveries wait in the shared Redis when there is one, so that they survive restarts and node loss.
	var hookStore webhooks.Store
	if m.redis != nil {
		hookStore = webhooks.NewRedisStore(m.redis, cfg.redisKeys("webhooks:"))
	}
	ints, err := newIntegrations(cfg, log, reg, hookStore)
	if err != nil {
		return nil, err
	}
	m.webhooks = ints.webhooks
	var limiter func(http.Handler) http.Handler
	if cfg.RateLimits {
		var store middleware.RateStore = middleware.NewMemoryRateStore(0)
		if m.redis != nil {
			// A client of their own that honours context deadlines: a Redis that hangs (rather than refusing
			// connections) then costs the requests that arrive before the per-node fallback takes over
			// middleware.DefaultRateStoreTimeout each, not go-redis's own 5 s. Measured: 0.5 s against 5 s.
			if m.rlRedis, err = openRedis(cfg.RedisURL, cfg.RedisCluster, true); err != nil {
				return nil, err
			}
			store = middleware.NewRedisRateStore(m.rlRedis, cfg.redisKeys("rate:"))
		}
		limiter = middleware.NewRateLimiter(middleware.RateLimitConfig{
			Rules:    api.RateRules(),
			Store:    store,
			ClientIP: func(r *http.Request) string { return middleware.ClientIP(r, cfg.TrustedProxies).String() },
			UserKey: func(r *http.Request) (string, bool) {
				id, ok := middleware.IdentityFrom(r.Context())
				return id.AuthUID, ok
			},
			Logger:     log,
			Registerer: reg, // per-node fallback while Redis is down: suparelay_ratelimit_fallback_active
		})
	}
	m.api = api.New(api.Config{
		Supa: client, Hub: m.hub, Auth: auth, Verifier: verifier, Logger: log,
		PublicSupabaseURL: cfg.PublicSupabaseURL, CookieName: cookie, SecureCookies: cfg.SecureCookies,
		Registry: reg, TrustedProxies: cfg.TrustedProxies, RateLimit: limiter,
		Webhooks: ints.webhooks, SMS: ints.sms, TelnyxPublicKey: cfg.TelnyxPublicKey, TelnyxReply: ints.telnyxReply,
		AlertMailer: ints.mailer, AlertTo: cfg.AlertEmailTo, AppOrigins: cfg.AppOrigins,
		UpstreamTimeouts: api.UpstreamTimeouts{Read: cfg.UpstreamRead, Send: cfg.UpstreamSend, Write: cfg.UpstreamWrite,
			Upload: cfg.UpstreamUpload},
		MessageLimits: api.MessageLimits{MetadataMaxBytes: cfg.MessageMetadataMaxBytes,
			MaxRecipients: cfg.MessageMaxRecipients, CiphertextMaxBytes: cfg.MessageCiphertextMaxBytes},
	})
	registerStateMetrics(reg, client, m.hub)
	registerParkMetrics(reg, m.parker.Load)
	if cfg.ServiceRoleKey != "" && cfg.ExpiryJobInterval > 0 {
		var lock jobs.Locker = jobs.NewLocalLocker()
		if m.redis != nil {
			lock = jobs.NewRedisLocker(m.redis, cfg.redisKeys("jobs:"))
		}
		m.expiry, err = jobs.NewRunner(jobs.RunnerConfig{Name: "expire-messages", Interval: cfg.ExpiryJobInterval,
			Lock: lock, Run: client.CleanupExpiredMessages, Logger: log, Registerer: reg})
		if err != nil {
			return nil, fmt.Errorf("expiry job: %w", err)
		}
	} else {
		log.Warn("expiry of disappearing messages is off: it needs SUPABASE_SERVICE_ROLE_KEY and EXPIRY_JOB_INTERVAL > 0")
	}
	srv := m.api
	handler := srv.Routes()
	if cfg.FrontendURL != "" || cfg.ProxySupabase {
		fd := frontdoor.Config{API: handler, MigrationMode: cfg.MigrationMode, Implemented: srv.Implements,
			ProxySupabase: cfg.ProxySupabase, TrustedProxies: cfg.TrustedProxies, RedirectWWW: cfg.RedirectWWW, Logger: log}
		if cfg.FrontendURL != "" {
			fd.FrontendURL, _ = url.Parse(cfg.FrontendURL)
		}
		if cfg.ProxySupabase {
			fd.SupabaseURL, _ = url.Parse(cfg.SupabaseURL)
		}
		if handler, err = frontdoor.New(fd); err != nil {
			return nil, fmt.Errorf("front door: %w", err)
		}
		log.Info("front door on", "frontend", cfg.FrontendURL, "proxy_supabase", cfg.ProxySupabase, "migration_mode", cfg.MigrationMode)
	}
	if cfg.BodyTimeout > 0 {
		handler = middleware.BodyTimeout(middleware.BodyTimeoutConfig{Timeout: cfg.BodyTimeout,
			MinRate: int64(cfg.BodyMinRate), Logger: log, Registerer: reg})(handler)
	}
	// Outermost, so the access log (inside api) names the same client as the rate limits: after TRUSTED_PROXIES.
	handler = middleware.ResolveClientIP(cfg.TrustedProxies)(handler)
	m.server = &http.Server{
		Addr:    cfg.bindAddr(),
		Handler: handler,
		// No WriteTimeout: it would cut every SSE stream. The stream sets a deadline per write instead, and the
		// other handlers are bounded by the Supabase call timeout. No ReadTimeout either: the front door streams
		// uploads of up to 2 GiB to Storage, and one fixed deadline for every body would cut those or be too
		// long for the rest. Bodies get a deadline that follows their progress (BodyTimeout above, with the
		// reasons), and API bodies are capped by size.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("configured", "supabase", cfg.SupabaseURL, "public_supabase", cfg.PublicSupabaseURL, "cookie", cookie,
		"broker", brokerName(cfg.RedisURL), "hs256_fallback", cfg.JWTSecret != "", "service_role", cfg.ServiceRoleKey != "")
	return m, nil
}

func brokerName(redisURL string) string {
	if redisURL != "" {
		return "redis"
	}
	return "memory"
}

// Listen binds the port (separate from Run so tests can learn the address).
func (m *Main) Listen() error {
	ln, err := net.Listen("tcp", m.server.Addr)
	if err != nil {
		return err
	}
	m.listener = ln
	return nil
}

// park puts the keep-alive parker (HTTP_PARK_IDLE) in front of the listener and around the handler, and returns
// the listener to serve on (the bound one when parking is off).
func (m *Main) park() (net.Listener, error) {
	w := m.watcherIf(m.cfg.ParkIdleConns)
	if w == nil {
		return m.listener, nil
	}
	p, err := idlepark.New(m.listener, idlepark.Config{Watcher: w, IdleTimeout: m.server.IdleTimeout, Logger: m.log})
	if err != nil {
		return nil, err
	}
	m.parker.Store(p)
	m.server.Handler = p.Handler(m.server.Handler) // outermost: every inner writer writes into its buffer
	return p, nil
}

// watcherIf is the epoll watcher for a feature that is on, nil otherwise (or where there is none).
func (m *Main) watcherIf(on bool) *netpoll.Watcher {
	if !on {
		return nil
	}
	return m.netpoll
}

// Run serves until ctx is done, then shuts down in order: stop accepting, end streams with a retry hint, drain
// the HTTP server, finish the background work the handlers left (which may still queue webhook deliveries), stop
// the webhook deliverer (attempts in flight may finish; the rest waits in its store), then close the broker and
// Redis. ShutdownTimeout bounds it all, but for the short grace given to canceled work to record where it stopped.
func (m *Main) Run(ctx context.Context) error {
	if m.listener == nil {
		if err := m.Listen(); err != nil {
			return err
		}
	}
	ln, err := m.park()
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Started before Serve: a stream or a publish that reached a Hub not yet started would be refused.
	if err := m.hub.Start(runCtx); err != nil {
		return fmt.Errorf("relay hub: %w", err)
	}
	if m.webhooks != nil {
		go func() {
			if err := m.webhooks.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				m.log.Error("webhook deliverer stopped", "err", err)
			}
		}()
	}
	if m.expiry != nil {
		go func() {
			if err := m.expiry.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				m.log.Error("expiry job stopped", "err", err)
			}
		}()
	}
	if m.cfg.DebugPprofAddr != "" {
		if err := servePprof(runCtx, m.cfg.DebugPprofAddr, m.log); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- m.server.Serve(ln) }()
	m.log.Info("listening", "addr", m.listener.Addr().String())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	m.log.Info("shutting down", "timeout", m.cfg.ShutdownTimeout)
	sctx, scancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
	defer scancel()
	m.server.SetKeepAlivesEnabled(false)
	m.hub.Shutdown(sctx)
	err = m.server.Shutdown(sctx)
	if berr := m.api.Close(sctx); berr != nil {
		m.log.Warn("background work canceled at shutdown", "err", berr)
	}
	if m.webhooks != nil {
		if werr := m.webhooks.Shutdown(sctx); werr != nil {
			m.log.Warn("webhook attempts canceled at shutdown; they stay queued", "err", werr)
		}
	}
	cancel()
	if m.netpoll != nil {
		_ = m.netpoll.Close() // after the hub's and the server's shutdown: nothing is watched any more
	}
	if cerr := m.broker.Close(); cerr != nil {
		m.log.Warn("closing broker", "err", cerr)
	}
	if m.redis != nil {
		_ = m.redis.Close()
	}
	if m.rlRedis != nil {
		_ = m.rlRedis.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	m.log.Info("stopped")
	return err
}
