// Package api holds the HTTP handlers of QryptChat's /api routes, one file per route group of the contract
// (routes.md; the list of route files is in testdata/routes.tsv). Handlers authenticate through middleware, do every data operation through supa
// under the caller's own token, and publish real-time events through relay.
package api

import (
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/notify"
	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
	"github.com/qryptchat/suparelay/webhooks"
)

// Config carries the dependencies and settings of the handlers. cmd/suparelay builds it.
type Config struct {
	Supa              *supa.Client
	Hub               *relay.Hub
	Auth              *middleware.Authenticator
	Verifier          *middleware.Verifier
	Logger            *slog.Logger
	PublicSupabaseURL string // browser-facing Supabase URL (frontend.md §5)
	CookieName        string
	SecureCookies     bool
	Registry          *prometheus.Registry // /metrics; nil = no metrics endpoint
	TrustedProxies    []netip.Prefix       // proxies whose X-Forwarded-For is believed
	Webhooks          *webhooks.Deliverer  // nil: stored webhooks are not delivered
	SMS               notify.SMSSender     // /api/sms/send-notification; nil = log only
	TelnyxPublicKey   string               // Ed25519 key of the Telnyx webhook (base64 or PEM); "" refuses all
	TelnyxReply       notify.SMSSender     // replies to inbound codes; nil = none
	AlertMailer       notify.Mailer        // opt-in copy of inbound SMS webhooks; nil = none
	AlertTo           []string
	RateLimit         func(http.Handler) http.Handler // per-path-group limits, run after authentication; nil = none
	AppOrigins        []string                        // public origins of the app, trusted by the cross-site form guard
	ProfileCacheTTL   time.Duration                   // zero = DefaultProfileCacheTTL
	Now               func() time.Time                // zero = time.Now
	MessageLimits     MessageLimits                   // what one chat message may carry (message_limits.go); zero = defaults
	UpstreamTimeouts  UpstreamTimeouts                // per-route-group Supabase budgets (upstream_timeouts.go); zero = defaults
}

// DefaultProfileCacheTTL is how long an auth uid → profile mapping is reused.
const DefaultProfileCacheTTL = 30 * time.Second

// Server is the set of /api handlers.
type Server struct {
	supa      *supa.Client
	hub       *relay.Hub
	auth      *middleware.Authenticator
	verifier  *middleware.Verifier
	log       *slog.Logger
	publicURL string
	cookie    string
	secure    bool
	registry  *prometheus.Registry
	now       func() time.Time
	profiles  *profileCache
	proxies   []netip.Prefix
	limits    routeLimits
	activity  activityTracker
	msgLimits MessageLimits
	timeouts  UpstreamTimeouts

	webhooks    *webhooks.Deliverer
	sms         notify.SMSSender
	telnyxKey   string
	telnyxReply notify.SMSSender
	alertMailer notify.Mailer
	alertTo     []string
	rateLimit   func(http.Handler) http.Handler
	appOrigins  []string

	routerOnce sync.Once
	mux        *chi.Mux

	background *background // fire-and-forget work, bounded and drained by Close (background.go)
	metrics    *httpMetrics
}

// New builds a Server from cfg.
func New(cfg Config) *Server {
	s := &Server{
		supa: cfg.Supa, hub: cfg.Hub, auth: cfg.Auth, verifier: cfg.Verifier, log: cfg.Logger,
		publicURL: cfg.PublicSupabaseURL, cookie: cfg.CookieName, secure: cfg.SecureCookies,
		registry: cfg.Registry, now: cfg.Now, proxies: cfg.TrustedProxies,
		webhooks: cfg.Webhooks, sms: cfg.SMS, telnyxKey: cfg.TelnyxPublicKey, telnyxReply: cfg.TelnyxReply,
		alertMailer: cfg.AlertMailer, alertTo: cfg.AlertTo, rateLimit: cfg.RateLimit,
		appOrigins: cfg.AppOrigins,
	}
	if s.sms == nil {
		s.sms = notify.LogSMS{Logger: cfg.Logger}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	ttl := cfg.ProfileCacheTTL
	if ttl <= 0 {
		ttl = DefaultProfileCacheTTL
	}
	s.profiles = newProfileCache(ttl, 100_000, s.now)
	s.limits = newRouteLimits(s.now)
	s.activity.last = make(map[string]time.Time)
	s.background = newBackground()
	var reg prometheus.Registerer
	if cfg.Registry != nil {
		reg = cfg.Registry
	}
	s.metrics = newHTTPMetrics(reg)
	s.msgLimits = cfg.MessageLimits.withDefaults()
	s.timeouts = cfg.UpstreamTimeouts.withDefaults()
	return s
}

// Routes returns the whole HTTP surface: health, metrics and /api.
func (s *Server) Routes() http.Handler { return s.router() }

// Implements reports whether this server has a handler for the request's method and path; the front door's
// migration mode sends everything else to the old Node server.
func (s *Server) Implements(r *http.Request) bool {
	return s.router().Match(chi.NewRouteContext(), r.Method, r.URL.Path)
}

// router builds the routes once.
func (s *Server) router() *chi.Mux {
	s.routerOnce.Do(func() { s.mux = s.buildRoutes() })
	return s.mux
}

func (s *Server) buildRoutes() *chi.Mux {
	r := chi.NewRouter()
	// GetHead sits on the root router: there it looks HEAD routes up by the full path, so an explicit HEAD route
	// (files/{fileId}) is kept and HEAD on any other GET route runs the GET handler without a body.
	r.Use(middleware.RequestID, middleware.AccessLog(s.log), middleware.Recoverer(s.log), s.metrics.middleware,
		middleware.SecurityHeaders, chimw.GetHead)
	r.NotFound(notFound)
	r.MethodNotAllowed(methodNotAllowedWithAllow)
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	if s.registry != nil {
		r.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	}
	r.Route("/api", func(r chi.Router) {
		r.Use(s.auth.Authenticate, middleware.AuthOutage)
		if s.rateLimit != nil {
			r.Use(s.rateLimit)
		}
		r.NotFound(notFound)
		r.MethodNotAllowed(methodNotAllowedWithAllow)
		// The event stream stays out of body limits and form guards: it is a long-lived GET.
		r.Get("/events", s.events)
		r.Head("/events", s.eventsHead)
		r.Group(func(r chi.Router) {
			r.Use(middleware.CrossSiteFormGuard(s.appOrigins...), s.upstreamDeadline)
			s.authRoutes(r)
			s.conversationRoutes(r)
			s.conversationActionRoutes(r)
			s.messageRoutes(r)
			s.typingRoutes(r)
			s.keyRoutes(r)
			s.fileRoutes(r)
			s.miscRoutes(r)
			s.settingsRoutes(r)
			s.chatMessageRoutes(r)
			s.cleanupRoutes(r)
			s.userRoutes(r)
			s.accountRoutes(r)
			s.webhookRoutes(r)
			s.integrationRoutes(r)
		})
	})
	return r
}

// notFound is the JSON 404 of every unknown path, under /api and outside it (routes.md §2.1).
func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "Not found")
}

// methodNotAllowed is the JSON 405 of a known path asked with a method it does not serve (routes.md §2.1).
func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
}
