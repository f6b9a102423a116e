package middleware

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// authStack is one verifier behind the full middleware chain on a real HTTP server.
type authStack struct {
	ks   *keyServer
	ec   ecSigner
	rsa  rsaSigner
	v    *Verifier
	srv  *httptest.Server
	echo *echoHandler
}

func newAuthStack(t *testing.T, refresher Refresher, shared SharedStore) *authStack {
	t.Helper()
	ec := newECSigner(t, "ec-"+testenv.RandomHex(4))
	rs := newRSASigner(t, "rsa-"+testenv.RandomHex(4))
	ks := newKeyServer(t, ec.jwk(), rs.jwk())
	st := &authStack{ks: ks, ec: ec, rsa: rs, v: newTestVerifier(t, ks), echo: &echoHandler{}}
	st.srv = httptest.NewServer(st.chain(t, refresher, shared, true))
	t.Cleanup(st.srv.Close)
	return st
}

func (st *authStack) chain(t *testing.T, refresher Refresher, shared SharedStore, require bool) http.Handler {
	t.Helper()
	a, err := NewAuthenticator(AuthConfig{Verifier: st.v, Refresher: refresher, CookieName: testCookie,
		Shared: shared, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = st.echo
	if require {
		h = RequireAuth(h)
	}
	return RequestID(AccessLog(quietLog)(Recoverer(quietLog)(a.Authenticate(h))))
}

// b64 encodes one JWT segment.
func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func splitJWT(t *testing.T, tok string) (string, string, string) {
	t.Helper()
	p := strings.Split(tok, ".")
	if len(p) != 3 {
		t.Fatalf("token has %d parts", len(p))
	}
	return p[0], p[1], p[2]
}

// TestAttackSuite: every case must be 401 and must not reach the handler.
func TestAttackSuite(t *testing.T) {
	t.Parallel()
	st := newAuthStack(t, nil, nil)
	other := newECSigner(t, st.ec.kid) // same kid, different key: a forged signature
	sub := newUUID()
	good := st.ec.sign(t, userClaims(sub, time.Hour))
	h, p, s := splitJWT(t, good)

	pubDER, err := x509.MarshalPKIXPublicKey(&st.ec.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsWithPub := func(key []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, userClaims(sub, time.Hour))
		tok.Header["kid"] = st.ec.kid
		out, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	relabel := func(tok, alg, kid string) string {
		_, pp, ss := splitJWT(t, tok)
		return b64(map[string]any{"alg": alg, "typ": "JWT", "kid": kid}) + "." + pp + "." + ss
	}
	tampered := func() string {
		var m map[string]any
		raw, _ := base64.RawURLEncoding.DecodeString(p)
		_ = json.Unmarshal(raw, &m)
		m["sub"] = newUUID()
		return h + "." + b64(m) + "." + s
	}
	claims := func(mod func(jwt.MapClaims)) string {
		c := userClaims(sub, time.Hour)
		mod(c)
		return st.ec.sign(t, c)
	}
	hsUser := func(mod func(jwt.MapClaims)) string {
		c := userClaims(sub, time.Hour)
		mod(c)
		out, err := devkeys.SignHS256(c)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	goodSession := sessionJSON(t, good, "", sub, time.Now().Add(time.Hour), nil)
	enc := "base64-" + base64.RawURLEncoding.EncodeToString(goodSession)
	half := len(enc) / 2
	expiredCookieTok := st.ec.sign(t, userClaims(sub, -time.Hour))
	forgedSession := sessionJSON(t, tampered(), "", sub, time.Now().Add(time.Hour), nil)
	forgedSession2 := sessionJSON(t, other.sign(t, userClaims(sub, time.Hour)), "", sub, time.Now().Add(time.Hour), nil)

	cases := []struct {
		name, authz, cookie string
	}{
		{name: "no token"},
		{name: "alg none", authz: "Bearer " + b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + p + "."},
		{name: "alg none with kid", authz: "Bearer " + b64(map[string]any{"alg": "none", "kid": st.ec.kid}) + "." + p + "."},
		{name: "HS256 signed with public key PEM", authz: "Bearer " + hsWithPub(pubPEM)},
		{name: "HS256 signed with public key DER", authz: "Bearer " + hsWithPub(pubDER)},
		{name: "HS256 signed with JWK JSON", authz: "Bearer " + hsWithPub(func() []byte { b, _ := json.Marshal(st.ec.jwk()); return b }())},
		{name: "ES256 signature relabelled RS256", authz: "Bearer " + relabel(good, "RS256", st.ec.kid)},
		{name: "ES256 signature relabelled HS256", authz: "Bearer " + relabel(good, "HS256", st.ec.kid)},
		{name: "ES256 signed, kid of RSA key", authz: "Bearer " + relabel(good, "ES256", st.rsa.kid)},
		{name: "RS256 signed, kid of EC key", authz: "Bearer " + relabel(st.rsa.sign(t, userClaims(sub, time.Hour)), "RS256", st.ec.kid)},
		{name: "RS256 signature relabelled ES256", authz: "Bearer " + relabel(st.rsa.sign(t, userClaims(sub, time.Hour)), "ES256", st.rsa.kid)},
		{name: "ES384 not allowed", authz: "Bearer " + relabel(good, "ES384", st.ec.kid)},
		{name: "PS256 not allowed", authz: "Bearer " + relabel(st.rsa.sign(t, userClaims(sub, time.Hour)), "PS256", st.rsa.kid)},
		{name: "ES256 without kid", authz: "Bearer " + b64(map[string]any{"alg": "ES256", "typ": "JWT"}) + "." + p + "." + s},
		{name: "kid not a string", authz: "Bearer " + b64(map[string]any{"alg": "ES256", "kid": 7}) + "." + p + "." + s},
		{name: "bad signature", authz: "Bearer " + other.sign(t, userClaims(sub, time.Hour))},
		{name: "signature stripped", authz: "Bearer " + h + "." + p + "."},
		{name: "tampered payload", authz: "Bearer " + tampered()},
		{name: "expired", authz: "Bearer " + st.ec.sign(t, userClaims(sub, -time.Minute))},
		{name: "no exp", authz: "Bearer " + claims(func(c jwt.MapClaims) { delete(c, "exp") })},
		{name: "nbf in the future", authz: "Bearer " + claims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(5 * time.Minute).Unix() })},
		{name: "wrong aud", authz: "Bearer " + claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" })},
		{name: "no aud", authz: "Bearer " + claims(func(c jwt.MapClaims) { delete(c, "aud") })},
		{name: "wrong iss", authz: "Bearer " + claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example/auth/v1" })},
		{name: "role anon", authz: "Bearer " + claims(func(c jwt.MapClaims) { c["role"] = "anon" })},
		{name: "role service_role", authz: "Bearer " + claims(func(c jwt.MapClaims) { c["role"] = "service_role" })},
		{name: "sub not a UUID", authz: "Bearer " + claims(func(c jwt.MapClaims) { c["sub"] = "alice" })},
		{name: "sub not a string", authz: "Bearer " + claims(func(c jwt.MapClaims) { c["sub"] = 42 })},
		{name: "HS256 wrong secret", authz: "Bearer " + func() string {
			out, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, userClaims(sub, time.Hour)).SignedString([]byte("not-the-secret-not-the-secret-xx"))
			return out
		}()},
		{name: "HS256 user token with wrong aud", authz: "Bearer " + hsUser(func(c jwt.MapClaims) { c["aud"] = "x" })},
		{name: "anon key as user", authz: "Bearer " + devkeys.AnonKey()},
		{name: "service role key as user", authz: "Bearer " + devkeys.ServiceRoleKey()},
		{name: "64 KiB token", authz: "Bearer " + strings.Repeat("a", 64<<10)},
		{name: "64 KiB of JWT-shaped token", authz: "Bearer " + h + "." + strings.Repeat("A", 64<<10) + "." + s},
		{name: "garbage token", authz: "Bearer not.a.jwt"},
		{name: "Basic scheme with valid token", authz: "Basic " + good},
		{name: "token without scheme", authz: good},
		{name: "legacy cookies ignored", cookie: "sb-access-token=" + good + "; sb-refresh-token=abc; session=" + good},
		{name: "other project's cookie ignored", cookie: cookieHeader("sb-xydzwxwsbgmznthiiscl-auth-token", goodSession)},
		{name: "cookie chunks without .0", cookie: testCookie + ".1=" + enc[:half] + "; " + testCookie + ".2=" + enc[half:]},
		{name: "cookie chunk .1 missing", cookie: testCookie + ".0=" + enc[:half] + "; " + testCookie + ".2=" + enc[half:]},
		// Duplicates are each tried (TestDuplicateSessionCookies); these have no good candidate.
		{name: "cookie chunk duplicated, no good assembly", cookie: testCookie + ".0=" + enc[:half] + "; " + testCookie + ".1=" + enc[:half] + "; " + testCookie + ".1=" + enc[half+1:]},
		{name: "cookie base duplicated, both forged", cookie: cookieHeader(testCookie, forgedSession) + "; " + cookieHeader(testCookie, forgedSession2)},
		{name: "cookie base five times", cookie: strings.Repeat(testCookie+"="+enc+"; ", 5)},
		{name: "cookie chunk .0 five times", cookie: strings.Repeat(testCookie+".0="+enc+"; ", 5)},
		{name: "cookie chunks out of order", cookie: testCookie + ".0=" + enc[half:] + "; " + testCookie + ".1=" + enc[:half]},
		{name: "cookie 11 chunks", cookie: func() string {
			var parts []string
			for i := range 11 {
				parts = append(parts, testCookie+"."+strconv.Itoa(i)+"="+enc[i*len(enc)/11:(i+1)*len(enc)/11])
			}
			return strings.Join(parts, "; ")
		}()},
		{name: "cookie over 32 KiB", cookie: testCookie + ".0=" + strings.Repeat("A", 20<<10) + "; " + testCookie + ".1=" + strings.Repeat("A", 20<<10)},
		{name: "cookie invalid base64", cookie: testCookie + "=base64-!!!not*base64"},
		{name: "cookie bad URL escape", cookie: testCookie + "=%7B%zz"},
		{name: "cookie JSON not a session", cookie: cookieHeader(testCookie, []byte(`{"foo":"bar"}`))},
		{name: "cookie JSON array", cookie: cookieHeader(testCookie, []byte(`["`+good+`","rt",null]`))},
		{name: "cookie access_token not a string", cookie: cookieHeader(testCookie, []byte(`{"access_token":5}`))},
		{name: "cookie raw JSON not JSON", cookie: testCookie + "=" + url.PathEscape(`{"access_token":`)},
		{name: "cookie with forged token", cookie: cookieHeader(testCookie, sessionJSON(t, tampered(), "rt", sub, time.Now().Add(time.Hour), nil))},
		{name: "cookie expired, no refresher", cookie: cookieHeader(testCookie, sessionJSON(t, expiredCookieTok, "rt", sub, time.Now().Add(-time.Hour), nil))},
		{name: "cookie with anon key", cookie: cookieHeader(testCookie, sessionJSON(t, devkeys.AnonKey(), "rt", sub, time.Now().Add(time.Hour), nil))},
		{name: "expired bearer and garbage cookie", authz: "Bearer " + st.ec.sign(t, userClaims(sub, -time.Minute)), cookie: testCookie + "=base64-%%%"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := doReq(t, st.srv.URL, tc.authz, tc.cookie)
			if got, want := resp.StatusCode, http.StatusUnauthorized; got != want {
				t.Fatalf("status = %d, want %d (body %s)", got, want, body)
			}
			if got, want := string(body), `{"error":"Unauthorized"}`; got != want {
				t.Errorf("body = %s, want %s", got, want)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			if got, want := resp.Header.Get("Content-Type"), "application/json"; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
		})
	}
	if n := st.echo.reached.Load(); n != 0 {
		t.Errorf("handler reached %d times, want 0", n)
	}
}

// TestIdentityResolution covers the accepted paths of auth.md §3.
func TestIdentityResolution(t *testing.T) {
	t.Parallel()
	st := newAuthStack(t, nil, nil)
	alice, bob := newUUID(), newUUID()
	aliceTok := st.ec.sign(t, userClaims(alice, time.Hour))
	bobTok := st.ec.sign(t, userClaims(bob, time.Hour))
	bobCookie := cookieHeader(testCookie, sessionJSON(t, bobTok, "rt", bob, time.Now().Add(time.Hour), nil))
	hsTok, err := devkeys.SignHS256(userClaims(alice, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	arrayAud := userClaims(alice, time.Hour)
	arrayAud["aud"] = []string{"other", "authenticated"}
	withinLeeway := st.ec.sign(t, userClaims(alice, -5*time.Second))

	cases := []struct {
		name, authz, cookie string
		wantUID, wantSource string
	}{
		{"ES256 bearer", "Bearer " + aliceTok, "", alice, SourceBearer},
		{"lowercase scheme", "bearer " + aliceTok, "", alice, SourceBearer},
		{"uppercase scheme, extra spaces", "BEARER   " + aliceTok, "", alice, SourceBearer},
		{"RS256 bearer", "Bearer " + st.rsa.sign(t, userClaims(alice, time.Hour)), "", alice, SourceBearer},
		{"legacy HS256 bearer", "Bearer " + hsTok, "", alice, SourceBearer},
		{"aud array", "Bearer " + st.ec.sign(t, arrayAud), "", alice, SourceBearer},
		{"expired within leeway", "Bearer " + withinLeeway, "", alice, SourceBearer},
		{"cookie base64 form", "", bobCookie, bob, SourceCookie},
		{"cookie raw URL-encoded JSON form", "", testCookie + "=" + url.PathEscape(string(sessionJSON(t, bobTok, "rt", bob, time.Now().Add(time.Hour), nil))), bob, SourceCookie},
		{"cookie base64 with padding", "", testCookie + "=base64-" + base64.URLEncoding.EncodeToString(sessionJSON(t, bobTok, "rt", bob, time.Now().Add(time.Hour), nil)), bob, SourceCookie},
		{"cookie chunks in reverse header order", "", func() string {
			enc := "base64-" + base64.RawURLEncoding.EncodeToString(sessionJSON(t, bobTok, "rt", bob, time.Now().Add(time.Hour), nil))
			return testCookie + ".1=" + enc[100:] + "; other=1; " + testCookie + ".0=" + enc[:100]
		}(), bob, SourceCookie},
		{"empty base cookie, chunks used", "", testCookie + "=; " + func() string {
			enc := "base64-" + base64.RawURLEncoding.EncodeToString(sessionJSON(t, bobTok, "rt", bob, time.Now().Add(time.Hour), nil))
			return testCookie + ".0=" + enc[:50] + "; " + testCookie + ".1=" + enc[50:]
		}(), bob, SourceCookie},
		{"expired bearer falls back to cookie", "Bearer " + st.ec.sign(t, userClaims(alice, -time.Hour)), bobCookie, bob, SourceCookie},
		{"forged bearer falls back to cookie", "Bearer " + aliceTok[:len(aliceTok)-4] + "AAAA", bobCookie, bob, SourceCookie},
		{"anon key bearer falls back to cookie", "Bearer " + devkeys.AnonKey(), bobCookie, bob, SourceCookie},
		{"both valid: bearer wins", "Bearer " + aliceTok, bobCookie, alice, SourceBearer},
		{"valid bearer, garbage cookie", "Bearer " + aliceTok, testCookie + "=base64-!!", alice, SourceBearer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := doReq(t, st.srv.URL, tc.authz, tc.cookie)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, body %s", resp.StatusCode, body)
			}
			var got echoBody
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if got.UID != tc.wantUID || got.Source != tc.wantSource {
				t.Errorf("identity = %s/%s, want %s/%s", got.UID, got.Source, tc.wantUID, tc.wantSource)
			}
		})
	}
}

// TestFailureReasons: routes distinguish "no credentials" from "bad token".
func TestFailureReasons(t *testing.T) {
	t.Parallel()
	ec := newECSigner(t, "k1")
	ks := newKeyServer(t, ec.jwk())
	v := newTestVerifier(t, ks)
	a, err := NewAuthenticator(AuthConfig{Verifier: v, CookieName: testCookie, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	echo := &echoHandler{}
	srv := httptest.NewServer(a.Authenticate(echo)) // public route: no RequireAuth
	t.Cleanup(srv.Close)
	sub := newUUID()
	for _, tc := range []struct{ name, authz, cookie, want string }{
		{"nothing", "", "", FailNoCredentials},
		{"expired bearer", "Bearer " + ec.sign(t, userClaims(sub, -time.Hour)), "", FailExpired},
		{"garbage bearer", "Bearer xyz", "", FailInvalid},
		{"garbage cookie", "", testCookie + "=base64-@@", FailInvalid},
		{"legacy cookie only", "", "sb-access-token=" + ec.sign(t, userClaims(sub, time.Hour)), FailNoCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := doReq(t, srv.URL, tc.authz, tc.cookie)
			var got echoBody
			if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
				t.Fatalf("status %d body %s err %v", resp.StatusCode, body, err)
			}
			if got.OK || got.Reason != tc.want {
				t.Errorf("ok=%v reason=%q, want reason %q", got.OK, got.Reason, tc.want)
			}
		})
	}
}

// TestRequireAuthWith: a route's own 401 body, and the fixed WWW-Authenticate texts.
func TestRequireAuthWith(t *testing.T) {
	t.Parallel()
	ec := newECSigner(t, "k1")
	v := newTestVerifier(t, newKeyServer(t, ec.jwk()))
	a, err := NewAuthenticator(AuthConfig{Verifier: v, CookieName: testCookie, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Authenticate(RequireAuthWith(map[string]any{"error": "Not authenticated", "success": false})(&echoHandler{})))
	t.Cleanup(srv.Close)
	resp, body := doReq(t, srv.URL, "Bearer "+ec.sign(t, userClaims(newUUID(), -time.Hour)), "")
	if got, want := string(body), `{"error":"Not authenticated","success":false}`; got != want || resp.StatusCode != 401 {
		t.Errorf("got %d %s, want 401 %s", resp.StatusCode, got, want)
	}
	if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token", error_description="The access token expired"`; got != want {
		t.Errorf("WWW-Authenticate = %q, want %q", got, want)
	}
	resp, _ = doReq(t, srv.URL, "", "")
	if got, want := resp.Header.Get("WWW-Authenticate"), "Bearer"; got != want {
		t.Errorf("no-credentials WWW-Authenticate = %q, want %q", got, want)
	}
}

// TestUnknownKIDRefreshesOnce: an unknown kid causes exactly one JWKS re-fetch, then 401; a second unknown kid within
// the rate-limit interval causes none.
func TestUnknownKIDRefreshesOnce(t *testing.T) {
	t.Parallel()
	st := newAuthStack(t, nil, nil)
	if got, want := st.ks.hits.Load(), int64(1); got != want {
		t.Fatalf("JWKS fetched %d times at start, want %d", got, want)
	}
	stranger := newECSigner(t, "unknown-kid-1")
	resp, _ := doReq(t, st.srv.URL, "Bearer "+stranger.sign(t, userClaims(newUUID(), time.Hour)), "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", resp.StatusCode)
	}
	if got, want := st.ks.hits.Load(), int64(2); got != want {
		t.Fatalf("JWKS fetched %d times after one unknown kid, want %d", got, want)
	}
	stranger2 := newECSigner(t, "unknown-kid-2")
	for range 3 {
		resp, _ = doReq(t, st.srv.URL, "Bearer "+stranger2.sign(t, userClaims(newUUID(), time.Hour)), "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status = %d, want 401", resp.StatusCode)
		}
	}
	if got, want := st.ks.hits.Load(), int64(2); got != want {
		t.Errorf("JWKS fetched %d times after rate-limited unknown kids, want %d", got, want)
	}
	if n := st.echo.reached.Load(); n != 0 {
		t.Errorf("handler reached %d times", n)
	}
}

// TestKeyRotation: a newly published key is accepted without restart; the JWKS going down (503, then refusing
// connections) does not break tokens of keys already loaded.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	st := newAuthStack(t, nil, nil)
	ctx := context.Background()
	next := newECSigner(t, "rotated-"+testenv.RandomHex(3))
	st.ks.publish(st.ec.jwk(), st.rsa.jwk(), next.jwk())
	sub := newUUID()
	c, err := st.v.Verify(ctx, next.sign(t, userClaims(sub, time.Hour)))
	if err != nil {
		t.Fatalf("token of the newly published key: %v", err)
	}
	if c.Subject != sub {
		t.Errorf("sub = %s, want %s", c.Subject, sub)
	}

	st.ks.setDown(true)
	for i, tok := range []string{st.ec.sign(t, userClaims(newUUID(), time.Hour)), next.sign(t, userClaims(newUUID(), time.Hour))} {
		if _, err := st.v.Verify(ctx, tok); err != nil {
			t.Errorf("token %d while JWKS answers 503: %v", i, err)
		}
	}
	st.ks.srv.Close() // connection refused from now on
	if _, err := st.v.Verify(ctx, st.rsa.sign(t, userClaims(newUUID(), time.Hour))); err != nil {
		t.Errorf("RS256 token while JWKS is gone: %v", err)
	}
	if err := st.v.Ready(); err != nil {
		t.Errorf("Ready() = %v after the JWKS went away, want nil (cached keys)", err)
	}
}

// TestJWKSDownAtStart: NewVerifier succeeds with the JWKS down, Ready reports it, and once keys are published the
// background retry loads them without a restart.
func TestJWKSDownAtStart(t *testing.T) {
	t.Parallel()
	ec := newECSigner(t, "late")
	ks := newKeyServer(t, ec.jwk())
	ks.setDown(true)
	v := newTestVerifier(t, ks)
	if err := v.Ready(); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("Ready() = %v, want ErrKeysUnavailable", err)
	}
	tok := ec.sign(t, userClaims(newUUID(), time.Hour))
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("Verify while keys missing = %v, want ErrTokenInvalid", err)
	}
	// HS256 keeps working meanwhile (legacy secret configured).
	hs, _ := devkeys.SignHS256(userClaims(newUUID(), time.Hour))
	if _, err := v.Verify(context.Background(), hs); err != nil {
		t.Errorf("HS256 while JWKS down: %v", err)
	}
	ks.setDown(false)
	select {
	case <-v.bootstrap:
	case <-time.After(30 * time.Second):
		t.Fatal("background JWKS retry never finished")
	}
	if err := v.Ready(); err != nil {
		t.Fatalf("Ready() = %v after keys appeared", err)
	}
	if _, err := v.Verify(context.Background(), ec.sign(t, userClaims(newUUID(), time.Hour))); err != nil {
		t.Errorf("Verify after keys appeared: %v", err)
	}
}

func TestVerifierConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := NewVerifier(ctx, VerifierConfig{}); err == nil {
		t.Error("empty config accepted")
	}
	if _, err := NewVerifier(ctx, VerifierConfig{HS256Secret: "x", Leeway: time.Minute}); err == nil {
		t.Error("leeway of 1 min accepted")
	}
	v, err := NewVerifier(ctx, VerifierConfig{HS256Secret: devkeys.JWTSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Ready(); err != nil {
		t.Errorf("HS256-only Ready() = %v", err)
	}
	// HS256-only verifier refuses ES256 tokens outright.
	if _, err := v.Verify(ctx, newECSigner(t, "x").sign(t, userClaims(newUUID(), time.Hour))); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("ES256 on HS256-only verifier: %v", err)
	}
	// A JWKS-only verifier refuses HS256 tokens even with valid-looking claims.
	ec := newECSigner(t, "k")
	vj := newTestVerifier(t, newKeyServer(t, ec.jwk()), func(c *VerifierConfig) { c.HS256Secret = "" })
	hs, _ := devkeys.SignHS256(userClaims(newUUID(), time.Hour))
	if _, err := vj.Verify(ctx, hs); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("HS256 on JWKS-only verifier: %v", err)
	}
}

// TestVerifyAnyAndSentinels: API keys are verifiable for service-role routes, and the sentinels classify errors.
func TestVerifyAnyAndSentinels(t *testing.T) {
	t.Parallel()
	ec := newECSigner(t, "k1")
	v := newTestVerifier(t, newKeyServer(t, ec.jwk()))
	ctx := context.Background()
	c, err := v.VerifyAny(ctx, devkeys.ServiceRoleKey())
	if err != nil {
		t.Fatalf("VerifyAny(service role key): %v", err)
	}
	if c.Role != "service_role" || c.Subject != "" {
		t.Errorf("claims = role %q sub %q", c.Role, c.Subject)
	}
	if _, err := v.Verify(ctx, devkeys.ServiceRoleKey()); !errors.Is(err, ErrTokenInvalid) && !errors.Is(err, ErrNotUser) {
		t.Errorf("Verify(service role key) = %v", err)
	}
	noAudSR := jwt.MapClaims{"iss": testIssuer, "aud": "authenticated", "role": "service_role", "exp": time.Now().Add(time.Hour).Unix(), "sub": newUUID()}
	if _, err := v.Verify(ctx, ec.sign(t, noAudSR)); !errors.Is(err, ErrNotUser) {
		t.Errorf("Verify(service_role with aud) = %v, want ErrNotUser", err)
	}
	if _, err := v.Verify(ctx, ec.sign(t, userClaims(newUUID(), -time.Hour))); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("expired = %v, want ErrTokenExpired", err)
	}
	if _, err := v.VerifyAny(ctx, "x.y.z"); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("VerifyAny(garbage) = %v", err)
	}
	// Claims content.
	sub := newUUID()
	c, err = v.Verify(ctx, ec.sign(t, userClaims(sub, time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != sub || c.Role != "authenticated" || c.Phone != "15555550101" || c.Issuer != testIssuer ||
		len(c.Audience) != 1 || c.Audience[0] != "authenticated" || c.SessionID == "" || c.IsAnonymous ||
		time.Until(c.ExpiresAt) < 59*time.Minute || c.Raw["aal"] != "aal1" {
		t.Errorf("claims = %+v", c)
	}
}

// TestTokenCache: cached results are served, bounded, and die with the token.
func TestTokenCache(t *testing.T) {
	t.Parallel()
	c := newTokenCache(32)
	now := time.Now()
	for i := range 1000 {
		var k [32]byte
		k[0], k[1], k[2] = byte(i), byte(i>>8), 1
		c.put(k, &Claims{Subject: "x"}, now.Add(time.Hour), now)
		if _, ok := c.get(k, now); !ok {
			t.Fatalf("entry %d not found right after put", i)
		}
	}
	if got := c.len(); got > 32 {
		t.Errorf("cache holds %d entries, bound 32", got)
	}
	var k [32]byte
	k[5] = 9
	c.put(k, &Claims{}, now.Add(time.Second), now)
	if _, ok := c.get(k, now.Add(2*time.Second)); ok {
		t.Error("expired entry served")
	}
	if newTokenCache(-1) != nil {
		t.Error("negative size should disable the cache")
	}
}

// TestVerifierAgainstStack verifies a dev-key token against the real Supabase Auth JWKS when the local stack runs.
func TestVerifierAgainstStack(t *testing.T) {
	base := testenv.SupabaseURL(t)
	v, err := NewVerifier(t.Context(), VerifierConfig{
		JWKSURL: base + "/auth/v1/.well-known/jwks.json", HS256Secret: devkeys.JWTSecret, Logger: quietLog,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Ready(); err != nil {
		t.Fatalf("Supabase Auth JWKS not loaded: %v", err)
	}
	tok, err := devkeys.SignES256(userClaims(newUUID(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Errorf("dev ES256 token against the Supabase Auth JWKS: %v", err)
	}
}
