package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/qryptchat/suparelay/internal/authsession"
)

// Failure reasons reported by [AuthFailureFrom] when a request has no identity. Routes that answer different 401
// texts for "no credentials" and "bad token" (routes.md) switch on these.
const (
	FailNoCredentials   = "no_credentials"   // no Bearer header and no session cookie
	FailExpired         = "expired"          // a genuine but expired token, not refreshable
	FailInvalid         = "invalid"          // malformed, forged, wrong audience/role, bad cookie, …
	FailRefreshRejected = "refresh_rejected" // Auth refused the cookie's refresh token; the cookie was deleted
	FailAuthUnavailable = "auth_unavailable" // the refresh could not reach Auth; RequireAuth answers 503
)

// refreshWindow: a cookie token with this little life left is refreshed before use (auth.md §7). Deliberately far
// below the browser's own 90 s window, so the server does not race the browser's refresh.
const refreshWindow = 10 * time.Second

// Identity is a verified caller. It exists in a request context only when the token verified.
type Identity struct {
	AuthUID   string    // JWT sub: the Supabase auth uid, NOT public.users.id
	Claims    *Claims   // shared, read-only
	Token     string    // the access token to forward to PostgREST as the user (the refreshed one if Refreshed)
	Source    string    // "bearer" or "cookie"
	Expires   time.Time // token exp: long-lived streams (SSE) must end by then
	Refreshed bool      // the cookie session was refreshed during this request (and the new cookie written)
	// Session is the cookie session in effect (after any refresh) when Source is "cookie"; nil for Bearer.
	// GET /api/auth/session reports this.
	Session *authsession.Session
}

// Identity sources.
const (
	SourceBearer = "bearer"
	SourceCookie = "cookie"
)

type ctxKey int

const (
	identityKey ctxKey = iota
	failureKey
	requestIDKey
	logInfoKey
)

// IdentityFrom returns the verified caller put in ctx by Authenticate, or false.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey).(*Identity)
	if !ok || id == nil {
		return Identity{}, false
	}
	return *id, true
}

// AuthFailureFrom returns why Authenticate found no identity (one of the Fail* constants), or false when
// Authenticate did not run or the request has an identity.
func AuthFailureFrom(ctx context.Context) (reason string, present bool) {
	r, ok := ctx.Value(failureKey).(string)
	return r, ok
}

// AuthConfig configures [NewAuthenticator].
type AuthConfig struct {
	Verifier *Verifier // required
	// Refresher exchanges refresh tokens; nil disables server-side refresh (an expired cookie is then FailExpired).
	Refresher Refresher
	// CookieName is the session cookie name, usually CookieNameFromURL(PUBLIC_SUPABASE_URL). Required.
	CookieName string
	// SecureCookies adds Secure to the cookies written (https origins).
	SecureCookies bool
	// Shared, when set, makes refresh single-flight and its results visible across nodes (Redis).
	Shared SharedStore
	// Logger receives the reasons tokens were refused. Zero: slog.Default().
	Logger *slog.Logger
}

// Authenticator resolves the caller of each request (auth.md §3).
type Authenticator struct {
	v       *Verifier
	cookie  string
	secure  bool
	log     *slog.Logger
	refresh *refresher // nil without a Refresher
}

// NewAuthenticator validates cfg and builds an Authenticator.
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("middleware: AuthConfig.Verifier is required")
	}
	if cfg.CookieName == "" || strings.ContainsAny(cfg.CookieName, " ;=,\t\r\n\"") {
		return nil, errors.New("middleware: AuthConfig.CookieName is empty or not a valid cookie name")
	}
	a := &Authenticator{v: cfg.Verifier, cookie: cfg.CookieName, secure: cfg.SecureCookies, log: orDefault(cfg.Logger)}
	if cfg.Refresher != nil {
		a.refresh = newRefresher(cfg.Refresher, cfg.Shared, a.log)
	}
	return a, nil
}

// Authenticate identifies the caller: a valid Bearer token (scheme case-insensitive), else the session cookie's
// access token, refreshed through the Refresher when it has expired or has ≤10 s left (cookie only, never Bearer).
// An expired or invalid Bearer falls back to the cookie; when both are valid the Bearer wins.
//
// It never rejects a request itself, so public routes behind it keep working with a dead cookie: on success it puts
// an [Identity] in the context (and writes the refreshed cookie); otherwise it records a Fail* reason for
// [RequireAuth]. A refresh refused by Auth deletes the cookie (all chunks). Place it after RequestID/AccessLog and
// before RequireAuth; it reads no body.
func (a *Authenticator) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, reason := a.identify(w, r)
		ctx := r.Context()
		if id != nil {
			ctx = context.WithValue(ctx, identityKey, id)
			noteUser(ctx, id.AuthUID)
		} else {
			ctx = context.WithValue(ctx, failureKey, reason)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// identify implements the caller-resolution rule.
func (a *Authenticator) identify(w http.ResponseWriter, r *http.Request) (*Identity, string) {
	ctx := r.Context()
	reason := FailNoCredentials
	if tok, ok := BearerToken(r.Header.Get("Authorization")); ok {
		c, err := a.v.Verify(ctx, tok)
		if err == nil {
			return &Identity{AuthUID: c.Subject, Claims: c, Token: tok, Source: SourceBearer, Expires: c.ExpiresAt}, ""
		}
		reason = a.refused(r, SourceBearer, err)
	}
	pick, err := a.pickCookieSession(r)
	if errors.Is(err, ErrNoSessionCookie) {
		return nil, reason
	}
	if err != nil {
		a.log.InfoContext(ctx, "auth: session cookie refused", "reason", err.Error())
		return nil, moreSpecific(reason, FailInvalid)
	}
	if pick.usable != nil {
		return pick.usable.identity(), ""
	}
	if pick.refreshable != nil && a.refresh != nil {
		return a.refreshCookie(w, r, pick.refreshable.sess, pick.refreshable.claims, reason)
	}
	if pick.nearExpiry != nil {
		return pick.nearExpiry.identity(), ""
	}
	return nil, moreSpecific(reason, pick.failure)
}

// cookieCandidate is one decoded session cookie and, when its access token verified, its claims.
type cookieCandidate struct {
	sess   *authsession.Session
	claims *Claims // nil when the token has expired
}

func (c *cookieCandidate) identity() *Identity {
	return &Identity{AuthUID: c.claims.Subject, Claims: c.claims, Token: c.sess.AccessToken, Source: SourceCookie,
		Expires: c.claims.ExpiresAt, Session: c.sess}
}

// cookiePick is what the request's session cookies offer, in order of preference.
type cookiePick struct {
	usable      *cookieCandidate // the first that verifies with more than refreshWindow left: use it as is
	refreshable *cookieCandidate // else the first expired or nearly expired one that holds a refresh token
	nearExpiry  *cookieCandidate // else the first valid one with ≤ refreshWindow left (used as is without refresh)
	failure     string           // else why none was usable (the most specific Fail* reason)
}

// maxVerifiedCandidates bounds the signature checks one request can cause through its session cookies (each
// decodable candidate costs one, ~80 µs for ES256), so duplicates cannot multiply an attacker's cost to us by more
// than this. Two cookie jars, the realistic worst case, need two.
const maxVerifiedCandidates = 4

// pickCookieSession tries every session cookie the request carries (usually one; several when the browser sends
// the name from more than one domain or path) and stops at the first one whose token verifies with life left. A
// later usable session beats an earlier refreshable one, so no refresh is spent when a good session is at hand.
// When two sessions both verify, the first in header order wins, as in the browser's own Supabase client (its
// cookie parser keeps the first of duplicate names). Refused candidates are logged at Info only when no candidate
// was usable (a sibling domain's stale cookie beside a good one is not news on every request).
func (a *Authenticator) pickCookieSession(r *http.Request) (cookiePick, error) {
	ctx := r.Context()
	p := cookiePick{failure: FailInvalid}
	var refusals []error
	verified := 0
	err := eachSessionCookie(r, a.cookie, func(sess *authsession.Session) bool {
		verified++
		c, err := a.v.Verify(ctx, sess.AccessToken)
		switch {
		case err == nil && time.Until(c.ExpiresAt) > refreshWindow:
			p.usable = &cookieCandidate{sess: sess, claims: c}
			return false
		case err == nil || errors.Is(err, ErrTokenExpired):
			cand := &cookieCandidate{sess: sess, claims: c}
			if p.refreshable == nil && sess.RefreshToken != "" {
				p.refreshable = cand
			}
			if p.nearExpiry == nil && err == nil {
				p.nearExpiry = cand
			}
		}
		if err != nil {
			refusals = append(refusals, err)
		}
		return verified < maxVerifiedCandidates
	})
	if p.usable != nil || p.refreshable != nil || p.nearExpiry != nil {
		for _, rerr := range refusals {
			a.log.DebugContext(ctx, "auth: another session cookie refused", "reason", rerr.Error())
		}
		return p, nil
	}
	if len(refusals) == 0 { // nothing decoded (or nothing at all): err says why
		return p, err
	}
	seen := FailNoCredentials
	for _, rerr := range refusals {
		seen = moreSpecific(seen, a.refused(r, SourceCookie, rerr))
	}
	if err != nil { // some candidates decoded and were refused, others did not decode
		a.log.InfoContext(ctx, "auth: session cookie refused", "reason", err.Error())
		seen = moreSpecific(seen, FailInvalid)
	}
	p.failure = seen
	return p, nil
}

// refreshCookie exchanges the cookie's refresh token and continues with the new session.
func (a *Authenticator) refreshCookie(w http.ResponseWriter, r *http.Request, old *authsession.Session, oldClaims *Claims,
	reason string) (*Identity, string) {
	ctx := r.Context()
	sess, err := a.refresh.do(ctx, refreshOwner(old.AccessToken), old.RefreshToken)
	switch {
	case errors.Is(err, authsession.ErrRejected):
		a.log.InfoContext(ctx, "auth: refresh token rejected; deleting the session cookie", "err", err.Error())
		ClearSessionCookie(w, r, a.cookie)
		return nil, moreSpecific(reason, FailRefreshRejected)
	case err != nil:
		a.log.ErrorContext(ctx, "auth: session refresh failed: Auth unavailable", "err", err.Error())
		if oldClaims != nil && time.Now().Before(oldClaims.ExpiresAt) {
			// Still valid for a few seconds: serve the request with it rather than fail; the next request retries.
			return &Identity{AuthUID: oldClaims.Subject, Claims: oldClaims, Token: old.AccessToken,
				Source: SourceCookie, Expires: oldClaims.ExpiresAt, Session: old}, ""
		}
		return nil, moreSpecific(reason, FailAuthUnavailable)
	}
	c, err := a.v.Verify(ctx, sess.AccessToken)
	if err != nil {
		a.log.ErrorContext(ctx, "auth: refreshed access token does not verify", "err", err.Error())
		return nil, moreSpecific(reason, FailInvalid)
	}
	WriteSessionCookie(w, r, a.cookie, sess.Raw, a.secure)
	return &Identity{AuthUID: c.Subject, Claims: c, Token: sess.AccessToken, Source: SourceCookie,
		Expires: c.ExpiresAt, Refreshed: true, Session: sess}, ""
}

// refused logs why a token was refused (the library's reason goes to the log only) and classifies it.
func (a *Authenticator) refused(r *http.Request, source string, err error) string {
	if errors.Is(err, ErrTokenExpired) {
		a.log.DebugContext(r.Context(), "auth: token expired", "source", source)
		return FailExpired
	}
	a.log.InfoContext(r.Context(), "auth: token refused", "source", source, "reason", err.Error())
	return FailInvalid
}

// moreSpecific keeps the reason that tells the client most: anything beats "no credentials", and an Auth outage or a
// rejected refresh beats a stale Bearer.
func moreSpecific(prev, next string) string {
	if failRank(next) >= failRank(prev) {
		return next
	}
	return prev
}

func failRank(reason string) int {
	switch reason {
	case FailExpired:
		return 1
	case FailInvalid:
		return 2
	case FailRefreshRejected:
		return 3
	case FailAuthUnavailable:
		return 4
	}
	return 0
}

// BearerToken extracts the token from an Authorization header value: scheme "Bearer" in any case, one or more
// spaces, then a token without whitespace. Anything else yields false.
func BearerToken(header string) (string, bool) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok := strings.TrimLeft(rest, " ")
	tok = strings.TrimRight(tok, " ")
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", false
	}
	return tok, true
}

// Response bodies and headers of refusals. The WWW-Authenticate descriptions are fixed texts (auth.md §10).
var (
	unauthorizedBody = []byte(`{"error":"Unauthorized"}`)
	unavailableBody  = []byte(`{"error":"Authentication service unavailable"}`)
)

// RequireAuth lets a request through only with an identity from Authenticate (which must run first). Otherwise it
// answers 401 {"error":"Unauthorized"} with a WWW-Authenticate header, or 503 {"error":"Authentication service
// unavailable"} when the cookie session needed a refresh and Auth could not be reached.
func RequireAuth(next http.Handler) http.Handler { return requireAuth(unauthorizedBody, next) }

// RequireAuthWith is RequireAuth with the route's own 401 body (routes.md), marshalled to JSON once, here; it
// panics at construction if body cannot be marshalled (a programming error).
func RequireAuthWith(body any) func(http.Handler) http.Handler {
	b, err := json.Marshal(body)
	if err != nil {
		panic("middleware: RequireAuthWith body: " + err.Error())
	}
	return func(next http.Handler) http.Handler { return requireAuth(b, next) }
}

func requireAuth(body []byte, next http.Handler) http.Handler {
	return AuthOutage(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := IdentityFrom(r.Context()); ok {
			next.ServeHTTP(w, r)
			return
		}
		reason, _ := AuthFailureFrom(r.Context())
		w.Header().Set("WWW-Authenticate", wwwAuthenticate(reason))
		writeJSONBytes(w, http.StatusUnauthorized, body)
	}))
}

// AuthOutage is the one place of the rule "Auth unavailable → 503" (auth.md §7): when the caller's cookie session
// needed a refresh and Supabase Auth could not be reached, the session may well be valid, so a 401 (which makes
// the browser give up and sign out) would be wrong. It answers 503 {"error":"Authentication service unavailable"}
// with Retry-After: 5 and lets every other request through. It runs after Authenticate.
func AuthOutage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reason, ok := AuthFailureFrom(r.Context()); ok && reason == FailAuthUnavailable {
			WriteAuthUnavailable(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// WriteAuthUnavailable is the answer of the rule above, also for handlers whose own call to Auth found it
// unreachable: 503 {"error":"Authentication service unavailable"}, Retry-After: 5.
func WriteAuthUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	writeJSONBytes(w, http.StatusServiceUnavailable, unavailableBody)
}

// wwwAuthenticate follows RFC 6750 §3: no error code when no credentials were presented.
func wwwAuthenticate(reason string) string {
	switch reason {
	case FailExpired:
		return `Bearer error="invalid_token", error_description="The access token expired"`
	case FailRefreshRejected:
		return `Bearer error="invalid_token", error_description="The session has ended"`
	case FailInvalid:
		return `Bearer error="invalid_token", error_description="The access token is invalid"`
	default:
		return `Bearer`
	}
}

// writeJSONBytes writes a pre-encoded JSON body with the given status.
func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
