package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/qryptchat/suparelay/api"
)

// Config is everything suparelay reads from the environment (and from a .env file when present). Every variable is
// listed with its default in .env.example.
type Config struct {
	Port              int
	ListenAddr        string // host:port to bind; from LISTEN_ADDR and PORT
	DebugPprofAddr    string // loopback host:port for net/http/pprof; empty: off (DEBUG_PPROF_ADDR)
	RedisPrefix       string // every Redis key starts with it (auth:, relay:, rate:, jobs: below it)
	BodyTimeout       time.Duration
	BodyMinRate       int    // bytes per second a request body must keep up after BodyTimeout
	SupabaseURL       string // how this server reaches Supabase
	PublicSupabaseURL string // the Supabase URL the browser was built with (avatar and upload URLs, cookie name)
	AnonKey           string
	ServiceRoleKey    string
	JWTSecret         string
	JWKSURL           string
	JWTIssuer         string
	CookieName        string
	SecureCookies     bool
	RedisURL          string
	RedisCluster      bool // REDIS_URL names the seed nodes of a Redis Cluster
	TrustedProxies    []netip.Prefix
	LogLevel          string
	LogFormat         string
	SupabaseTimeout   time.Duration
	// SupabaseMaxConcurrent bounds this node's PostgREST calls in flight (below PostgREST's pool divided by the
	// nodes); a call that finds no slot within SupabaseQueueWait is refused with 503 before reaching it.
	SupabaseMaxConcurrent int
	SupabaseQueueWait     time.Duration
	// Per-route budgets for all of a request's Supabase calls (api.UpstreamTimeouts).
	UpstreamRead, UpstreamSend, UpstreamWrite, UpstreamUpload time.Duration
	// What one chat message may carry (413 beyond).
	MessageMetadataMaxBytes   int
	MessageMaxRecipients      int
	MessageCiphertextMaxBytes int
	ShutdownTimeout           time.Duration
	SSEHeartbeat              time.Duration
	SSERoomGrace              time.Duration
	SSEMaxPerUser             int
	SSEMaxStreams             int
	SSEHistorySize            int
	SSEHistoryTTL             time.Duration
	SSEHistoryMaxBytes        int64 // total bytes of the history, on each node and in Redis
	ExpiryJobInterval         time.Duration

	RateLimits           bool
	WebhookSigningSecret string
	WebhookAllowPrivate  bool
	SMSProvider          string // log, twilio or telnyx
	TwilioAccountSID     string
	TwilioAuthToken      string
	TwilioPhoneNumber    string
	TwilioMessagingSID   string
	TelnyxAPIKey         string
	TelnyxPhoneNumber    string
	TelnyxPublicKey      string
	MailgunAPIKey        string
	MailgunDomain        string
	AlertEmailTo         []string
	AlertEmailFrom       string
	FrontendURL          string
	ProxySupabase        bool
	MigrationMode        bool
	AppOrigins           []string
	SSEDetach            bool
	RedirectWWW          bool
	SSEPresence          bool
	ParkIdleConns        bool // HTTP_PARK_IDLE: keep-alive connections wait between requests in epoll, not net/http
	SSELean              bool // SSE_LEAN: live detached streams without a goroutine each (relay.HubConfig.LeanStreams)
}

// loadDotEnv reads KEY=VALUE lines from path into the process environment without overriding variables that are
// already set (the real environment wins). A missing file is not an error.
func loadDotEnv(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	vars, err := parseDotEnv(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, kv := range vars {
		if _, set := os.LookupEnv(kv[0]); !set {
			_ = os.Setenv(kv[0], kv[1])
		}
	}
	return nil
}

// parseDotEnv parses .env text: blank lines and # comments are skipped, an optional "export " prefix is allowed,
// values may be wrapped in single or double quotes. Keys must be environment-variable names.
func parseDotEnv(r io.Reader) ([][2]string, error) {
	var out [][2]string
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !envName(k) {
			return nil, fmt.Errorf("line %d: expected KEY=VALUE", n)
		}
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		out = append(out, [2]string{k, v})
	}
	return out, sc.Err()
}

// envName reports whether k is a plain environment variable name ([A-Za-z_][A-Za-z0-9_]*).
func envName(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// LoadConfig reads the configuration from getenv and reports every missing or malformed value at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	var errs []error
	str := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	num := func(k string, def int) int {
		v := str(k, "")
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a non-negative integer", k, v))
			return def
		}
		return n
	}
	dur := func(k string, def time.Duration) time.Duration {
		v := str(k, "")
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration like 25s or 2m", k, v))
			return def
		}
		return d
	}
	boolean := func(k string, def bool) bool {
		switch v := strings.ToLower(str(k, "")); v {
		case "":
			return def
		case "1", "true", "yes", "on":
			return true
		case "0", "false", "no", "off":
			return false
		default:
			errs = append(errs, fmt.Errorf("%s: %q is not true or false", k, v))
			return def
		}
	}
	httpURL := func(k, v string, required bool) string {
		if v == "" {
			if required {
				errs = append(errs, fmt.Errorf("%s is required", k))
			}
			return ""
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not an http(s) URL", k, v))
		}
		return strings.TrimRight(v, "/")
	}

	c := Config{
		Port:                      num("PORT", 3000),
		SupabaseURL:               httpURL("SUPABASE_URL", str("SUPABASE_URL", ""), true),
		AnonKey:                   str("SUPABASE_ANON_KEY", ""),
		ServiceRoleKey:            str("SUPABASE_SERVICE_ROLE_KEY", ""),
		JWTSecret:                 str("SUPABASE_JWT_SECRET", ""),
		JWTIssuer:                 str("SUPABASE_JWT_ISSUER", ""),
		CookieName:                str("SUPABASE_AUTH_COOKIE_NAME", ""),
		RedisURL:                  str("REDIS_URL", ""),
		LogLevel:                  strings.ToLower(str("LOG_LEVEL", "info")),
		LogFormat:                 strings.ToLower(str("LOG_FORMAT", "auto")),
		SupabaseTimeout:           dur("SUPABASE_TIMEOUT", 10*time.Second),
		SupabaseMaxConcurrent:     num("SUPABASE_MAX_CONCURRENT", 8),
		SupabaseQueueWait:         dur("SUPABASE_QUEUE_WAIT", 250*time.Millisecond),
		UpstreamRead:              dur("UPSTREAM_TIMEOUT_READ", api.DefaultReadTimeout),
		UpstreamSend:              dur("UPSTREAM_TIMEOUT_SEND", api.DefaultSendTimeout),
		UpstreamWrite:             dur("UPSTREAM_TIMEOUT_WRITE", api.DefaultWriteTimeout),
		UpstreamUpload:            dur("UPSTREAM_TIMEOUT_UPLOAD", api.DefaultUploadTimeout),
		MessageMetadataMaxBytes:   num("MESSAGE_METADATA_MAX_BYTES", api.DefaultMessageMetadataMaxBytes),
		MessageMaxRecipients:      num("MESSAGE_MAX_RECIPIENTS", api.DefaultMessageMaxRecipients),
		MessageCiphertextMaxBytes: num("MESSAGE_CIPHERTEXT_MAX_BYTES", api.DefaultMessageCiphertextMaxBytes),
		ShutdownTimeout:           dur("SHUTDOWN_TIMEOUT", 15*time.Second),
		SSEHeartbeat:              dur("SSE_HEARTBEAT", 25*time.Second),
		SSERoomGrace:              dur("SSE_ROOM_GRACE", 120*time.Second),
		SSEMaxPerUser:             num("SSE_MAX_STREAMS_PER_USER", 10),
		SSEMaxStreams:             num("SSE_MAX_STREAMS", 19000),
		SSEHistorySize:            num("SSE_HISTORY_SIZE", 10000),
		SSEHistoryTTL:             dur("SSE_HISTORY_TTL", 5*time.Minute),
		SSEHistoryMaxBytes:        int64(num("SSE_HISTORY_MAX_BYTES", 64<<20)),
		ExpiryJobInterval:         dur("EXPIRY_JOB_INTERVAL", time.Minute),
		RedisPrefix:               str("REDIS_PREFIX", "suparelay:"),
		BodyTimeout:               dur("REQUEST_BODY_TIMEOUT", 30*time.Second),
		BodyMinRate:               num("REQUEST_BODY_MIN_RATE", 8<<10),
	}
	c.RateLimits = boolean("RATE_LIMITS", true)
	c.RedisCluster = boolean("REDIS_CLUSTER", false)
	c.SSEDetach = boolean("SSE_DETACH", true)
	c.RedirectWWW = boolean("REDIRECT_WWW", false)
	c.SSEPresence = boolean("SSE_PRESENCE", true)
	c.ParkIdleConns = boolean("HTTP_PARK_IDLE", true)
	c.SSELean = boolean("SSE_LEAN", true)
	c.WebhookSigningSecret = str("WEBHOOK_SIGNING_SECRET", "")
	c.WebhookAllowPrivate = boolean("WEBHOOK_ALLOW_PRIVATE", false)
	c.SMSProvider = strings.ToLower(str("SMS_PROVIDER", "log"))
	c.TwilioAccountSID, c.TwilioAuthToken = str("TWILIO_ACCOUNT_SID", ""), str("TWILIO_AUTH_TOKEN", "")
	c.TwilioPhoneNumber, c.TwilioMessagingSID = str("TWILIO_PHONE_NUMBER", ""), str("TWILIO_MESSAGE_SERVICE_SID", "")
	c.TelnyxAPIKey, c.TelnyxPhoneNumber = str("TELNYX_API_KEY", ""), str("TELNYX_PHONE_NUMBER", "")
	c.TelnyxPublicKey = str("TELNYX_PUBLIC_KEY", "")
	c.MailgunAPIKey, c.MailgunDomain = str("MAILGUN_API_KEY", ""), str("MAILGUN_DOMAIN", "")
	c.AlertEmailFrom = str("ALERT_EMAIL_FROM", "")
	for _, a := range strings.Split(str("ALERT_EMAIL_TO", ""), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.AlertEmailTo = append(c.AlertEmailTo, a)
		}
	}
	switch c.SMSProvider {
	case "log", "twilio", "telnyx":
	default:
		errs = append(errs, fmt.Errorf("SMS_PROVIDER: %q is not one of log, twilio, telnyx", c.SMSProvider))
	}
	c.FrontendURL = httpURL("FRONTEND_URL", str("FRONTEND_URL", ""), false)
	c.ProxySupabase = boolean("PROXY_SUPABASE", false)
	for _, o := range strings.Split(str("APP_ORIGINS", ""), ",") {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			c.AppOrigins = append(c.AppOrigins, httpURL("APP_ORIGINS", o, false))
		}
	}
	c.MigrationMode = boolean("MIGRATION_MODE", false)
	if c.MigrationMode && c.FrontendURL == "" {
		errs = append(errs, errors.New("MIGRATION_MODE needs FRONTEND_URL"))
	}
	c.PublicSupabaseURL = httpURL("SUPABASE_PUBLIC_URL", str("SUPABASE_PUBLIC_URL", c.SupabaseURL), false)
	if c.AnonKey == "" {
		errs = append(errs, errors.New("SUPABASE_ANON_KEY is required"))
	}
	c.JWKSURL = httpURL("SUPABASE_JWKS_URL", str("SUPABASE_JWKS_URL", ""), false)
	if c.JWKSURL == "" && c.SupabaseURL != "" {
		c.JWKSURL = c.SupabaseURL + "/auth/v1/.well-known/jwks.json"
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("SUPABASE_JWT_SECRET must be at least 32 characters"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("PORT: %d is not a TCP port", c.Port))
	}
	if addr, err := listenAddr(str("LISTEN_ADDR", ""), c.Port); err != nil {
		errs = append(errs, fmt.Errorf("LISTEN_ADDR: %w", err))
	} else {
		c.ListenAddr = addr
	}
	if addr, err := pprofAddr(str("DEBUG_PPROF_ADDR", "")); err != nil {
		errs = append(errs, fmt.Errorf("DEBUG_PPROF_ADDR: %w", err))
	} else {
		c.DebugPprofAddr = addr
	}
	if err := redisPrefixOK(c.RedisPrefix); err != nil {
		errs = append(errs, fmt.Errorf("REDIS_PREFIX: %w", err))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("LOG_FORMAT: %q is not one of auto, text, json", c.LogFormat))
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			errs = append(errs, fmt.Errorf("REDIS_URL: %q is not a redis:// URL", c.RedisURL))
		}
	}
	for _, p := range strings.Split(str("TRUSTED_PROXIES", ""), ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q is not an address or CIDR", p))
				continue
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx)
	}
	secure := str("SECURE_COOKIES", "auto")
	switch secure {
	case "auto":
		c.SecureCookies = strings.HasPrefix(c.PublicSupabaseURL, "https://")
	case "true", "1":
		c.SecureCookies = true
	case "false", "0":
	default:
		errs = append(errs, fmt.Errorf("SECURE_COOKIES: %q is not auto, true or false", secure))
	}
	if c.SSEHeartbeat > 0 && c.SSEHeartbeat < time.Second {
		errs = append(errs, errors.New("SSE_HEARTBEAT must be at least 1s"))
	}
	if c.SSERoomGrace > 0 && c.SSERoomGrace < 60*time.Second {
		errs = append(errs, errors.New("SSE_ROOM_GRACE must be at least 60s (sse.md §5.4)"))
	}
	return c, errors.Join(errs...)
}
