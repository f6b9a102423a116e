// Package frontdoor is suparelay's optional same-origin front door (frontend.md §5–§6): one listener that sends
// /api/* (and the server's own /healthz, /readyz, /metrics) to the API handler, passes Supabase's /auth/v1,
// /rest/v1 and /storage/v1 through to the Supabase project unchanged when asked to, and proxies every other path
// to the SvelteKit frontend (pages, assets, streaming responses, WebSocket upgrades).
//
// Putting the browser's Supabase URL on the app's own origin is what makes a local or self-hosted Supabase work
// with the frontend's Content-Security-Policy (connect-src 'self' https://*.supabase.co).
//
// Nothing here buffers: the API handler gets the original ResponseWriter (so /api/events can flush), and the
// proxies flush every write (FlushInterval -1), which keeps server-sent events and SvelteKit's streamed pages
// live. Request bodies are streamed with no size cap (signed Storage uploads reach 2 GiB); the http.Server's
// ReadTimeout must not be set, or it cuts those uploads off. An upstream that cannot be reached gives
// 502 {"error":"Bad gateway"}.
//
// The package imports nothing else of suparelay.
package frontdoor

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"time"
)

// Config configures [New].
type Config struct {
	// API serves /api, /api/* and /healthz, /readyz, /metrics. Required.
	API http.Handler

	// MigrationMode sends an /api request that Implemented reports false for to the frontend instead, so the old
	// Node routes keep answering while routes move over. Implemented is required with it (the lead builds it from
	// chi's Routes().Match). Outside migration mode no /api request ever reaches the frontend.
	MigrationMode bool
	Implemented   func(*http.Request) bool

	// ProxySupabase passes /auth/v1/*, /rest/v1/* and /storage/v1/* to SupabaseURL: method, path, query, headers
	// (except Cookie, which belongs to the app's origin) and streamed body, and the answer's status, headers and
	// body. SupabaseURL is required with it; its path, if any, is prepended.
	ProxySupabase bool
	SupabaseURL   *url.URL

	// FrontendURL receives every other path. nil: those paths answer 404 {"error":"Not found"}.
	FrontendURL *url.URL

	// PreserveHost sends the client's Host header to the frontend instead of the frontend's own host (the default
	// rewrites it; the original host is always in X-Forwarded-Host). Supabase always gets its own host.
	PreserveHost bool

	// TrustedProxies are peers (e.g. a TLS terminator) whose X-Forwarded-For/-Host/-Proto are kept and extended;
	// from anyone else those headers are replaced with what this server sees.
	TrustedProxies []netip.Prefix

	// RedirectWWW answers requests for "www.<host>" with a 301 to "<host>", as the original deployment did.
	RedirectWWW bool

	// Transport reaches the upstreams. nil = a clone of http.DefaultTransport that ignores proxy environment
	// variables and never adds or strips compression.
	Transport http.RoundTripper

	Logger *slog.Logger // nil = discard
}

// New checks cfg and returns the front door handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.API == nil {
		return nil, errors.New("frontdoor: API handler is required")
	}
	if cfg.MigrationMode && cfg.Implemented == nil {
		return nil, errors.New("frontdoor: MigrationMode needs Implemented")
	}
	if cfg.MigrationMode && cfg.FrontendURL == nil {
		return nil, errors.New("frontdoor: MigrationMode needs FrontendURL")
	}
	if cfg.ProxySupabase && !absoluteHTTP(cfg.SupabaseURL) {
		return nil, errors.New("frontdoor: ProxySupabase needs an absolute http(s) SupabaseURL")
	}
	if cfg.FrontendURL != nil && !absoluteHTTP(cfg.FrontendURL) {
		return nil, errors.New("frontdoor: FrontendURL must be an absolute http(s) URL")
	}
	fd := &frontDoor{cfg: cfg, log: cfg.Logger, transport: cfg.Transport}
	if fd.log == nil {
		fd.log = slog.New(slog.DiscardHandler)
	}
	if fd.transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		t.DisableCompression = true // pass Accept-Encoding and encoded bodies through untouched
		t.MaxIdleConnsPerHost = 64
		t.IdleConnTimeout = 90 * time.Second
		fd.transport = t
	}
	if cfg.FrontendURL != nil {
		fd.frontend = fd.proxy("frontend", cfg.FrontendURL, cfg.PreserveHost, false)
	}
	if cfg.ProxySupabase {
		fd.supabase = fd.proxy("supabase", cfg.SupabaseURL, false, true)
	}
	return fd, nil
}

func absoluteHTTP(u *url.URL) bool {
	return u != nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

type frontDoor struct {
	cfg       Config
	log       *slog.Logger
	transport http.RoundTripper
	frontend  http.Handler
	supabase  http.Handler
}

func (fd *frontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if fd.cfg.RedirectWWW {
		if host, ok := strings.CutPrefix(strings.ToLower(r.Host), "www."); ok && host != "" {
			http.Redirect(w, r, fd.scheme(r)+"://"+host+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
	}
	p := r.URL.Path
	switch {
	case isAPI(p):
		if fd.cfg.MigrationMode && !fd.cfg.Implemented(r) {
			fd.frontend.ServeHTTP(w, r)
			return
		}
		fd.cfg.API.ServeHTTP(w, r)
	case p == "/healthz" || p == "/readyz" || p == "/metrics":
		fd.cfg.API.ServeHTTP(w, r)
	case fd.supabase != nil && isSupabase(p):
		fd.supabase.ServeHTTP(w, r)
	case fd.frontend == nil:
		writeError(w, http.StatusNotFound, "Not found")
	case isAPI(normalize(p)):
		// "/x/../api/…", "//api/…" or "/\api/…" would reach the Node build's own (original) /api routes once
		// Node normalizes the path; those must never answer.
		writeError(w, http.StatusNotFound, "Not found")
	default:
		fd.frontend.ServeHTTP(w, r)
	}
}

func isAPI(p string) bool { return p == "/api" || strings.HasPrefix(p, "/api/") }

func isSupabase(p string) bool {
	for _, pre := range []string{"/auth/v1", "/rest/v1", "/storage/v1"} {
		if rest, ok := strings.CutPrefix(p, pre); ok && (rest == "" || rest[0] == '/') {
			return true
		}
	}
	return false
}

// normalize approximates what a URL parser downstream may turn p into: backslashes as slashes, dot segments and
// repeated slashes resolved, lower case.
func normalize(p string) string {
	return strings.ToLower(path.Clean("/" + strings.ReplaceAll(p, `\`, "/")))
}

// proxy builds one upstream's reverse proxy.
func (fd *frontDoor) proxy(name string, target *url.URL, preserveHost, dropCookies bool) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			if preserveHost {
				pr.Out.Host = pr.In.Host
			}
			fd.forwarded(pr)
			if dropCookies {
				pr.Out.Header.Del("Cookie")
			}
		},
		Transport:     fd.transport,
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(fd.log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away; nothing to answer
			}
			fd.log.WarnContext(r.Context(), "upstream unavailable", "upstream", name, "method", r.Method, "path", r.URL.Path, "error", err)
			writeError(w, http.StatusBadGateway, "Bad gateway")
		},
	}
}

// forwarded sets X-Forwarded-For/-Host/-Proto. The incoming values are kept (and For extended) only when the
// direct peer is a trusted proxy; otherwise a client could choose the address the rate limits see.
func (fd *frontDoor) forwarded(pr *httputil.ProxyRequest) {
	trusted := fd.trustedPeer(pr.In)
	if trusted {
		if xff := pr.In.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			pr.Out.Header["X-Forwarded-For"] = append([]string(nil), xff...)
		}
	}
	pr.SetXForwarded()
	if trusted {
		for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := pr.In.Header.Get(h); v != "" {
				pr.Out.Header.Set(h, v)
			}
		}
	}
}

func (fd *frontDoor) trustedPeer(r *http.Request) bool {
	if len(fd.cfg.TrustedProxies) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range fd.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (fd *frontDoor) scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if fd.trustedPeer(r) {
		if p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p == "https" || p == "http" {
			return p
		}
	}
	return "http"
}

func writeError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":"` + msg + `"}`))
}
