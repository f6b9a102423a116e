package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// newTestServer runs devauth's handler in-process against the real stack database and PostgREST.
func newTestServer(t *testing.T, mutate func(*Config)) *httptest.Server {
	t.Helper()
	cfg := Config{
		DatabaseURL: testenv.DatabaseURL(t), PostgRESTURL: testenv.PostgRESTURL(t),
		Issuer: "http://127.0.0.1:54321/auth/v1", JWTExpiry: time.Hour, OTPInterval: 0,
		ReuseInterval: 10 * time.Second, TestOTPs: map[string]string{"15555550101": "123456"}, AnyOTP: true,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := newServer(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return hs
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// call sends a request; hdr holds header name/value pairs. apikey defaults to the anon key unless given ("" drops it).
func call(t *testing.T, method, url string, body any, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("apikey", devkeys.AnonKey())
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := isolatedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

// freshPhone returns an unused E.164 number in the 555 range.
func freshPhone() string {
	var b strings.Builder
	b.WriteString("+1555")
	for _, c := range testenv.RandomHex(7) {
		b.WriteByte(byte('0' + int(c)%10))
	}
	return b.String()[:12]
}

func wantError(t *testing.T, r reply, status int, code string) {
	t.Helper()
	var e struct {
		Code      int    `json:"code"`
		ErrorCode string `json:"error_code"`
		Msg       string `json:"msg"`
	}
	if r.status != status {
		t.Fatalf("status = %d, want %d (%s)", r.status, status, r.body)
	}
	r.json(t, &e)
	if e.Code != status || e.ErrorCode != code || e.Msg == "" {
		t.Fatalf("error body = %s, want code %d error_code %q and a msg", r.body, status, code)
	}
}

func signIn(t *testing.T, base, phone string) sessionJSON {
	t.Helper()
	r := call(t, "POST", base+"/auth/v1/verify", map[string]string{"type": "sms", "phone": phone, "token": "123456"})
	if r.status != 200 {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
	var s sessionJSON
	r.json(t, &s)
	return s
}

func TestOTPSignInIssuesSupabaseSession(t *testing.T) {
	t.Parallel()
	hs := newTestServer(t, nil)
	phone := freshPhone()
	r := call(t, "POST", hs.URL+"/auth/v1/otp", map[string]any{"phone": phone, "create_user": true, "channel": "sms"})
	if r.status != 200 || strings.TrimSpace(string(r.body)) != "{}" {
		t.Fatalf("otp = %d %s, want 200 {}", r.status, r.body)
	}
	var authID string
	db := testenv.DB(t)
	if err := db.QueryRow(context.Background(), `select id::text from auth.users where phone = $1`, phone[1:]).Scan(&authID); err != nil {
		t.Fatalf("auth.users row for %s (stored without '+'): %v", phone, err)
	}

	// /verify is open at the gateway: no apikey.
	r = call(t, "POST", hs.URL+"/auth/v1/verify", map[string]string{"type": "sms", "phone": phone, "token": "123456"}, "apikey", "")
	if r.status != 200 {
		t.Fatalf("verify = %d %s", r.status, r.body)
	}
	var s sessionJSON
	r.json(t, &s)
	if s.TokenType != "bearer" || s.ExpiresIn != 3600 || len(s.RefreshToken) != 12 || s.User.ID != authID {
		t.Fatalf("session = %+v", s)
	}
	if d := time.Until(time.Unix(s.ExpiresAt, 0)); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("expires_at in %v, want about an hour", d)
	}
	if s.User.Phone != phone[1:] || s.User.PhoneConfirmedAt == nil || s.User.LastSignInAt == nil ||
		len(s.User.Identities) != 1 || s.User.Identities[0].Provider != "phone" || s.User.Aud != "authenticated" {
		t.Fatalf("user = %+v", s.User)
	}

	// The token verifies against the published JWKS and carries exactly Supabase Auth's phone-user claims.
	jwks := call(t, "GET", hs.URL+"/auth/v1/.well-known/jwks.json", nil, "apikey", "")
	kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(jwks.body))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(s.AccessToken, claims, kf.Keyfunc, jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithAudience("authenticated"), jwt.WithIssuer("http://127.0.0.1:54321/auth/v1"), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("verify access token with JWKS: %v", err)
	}
	if got := tok.Header["kid"]; got != devkeys.KID {
		t.Errorf("kid = %v, want %s", got, devkeys.KID)
	}
	got, _ := json.Marshal(claims)
	var c map[string]any
	_ = json.Unmarshal(got, &c)
	sid, _ := c["session_id"].(string)
	if !uuidRE.MatchString(sid) {
		t.Errorf("session_id = %v", c["session_id"])
	}
	amr, _ := c["amr"].([]any)
	if len(amr) != 1 || amr[0].(map[string]any)["method"] != "otp" || amr[0].(map[string]any)["timestamp"] == nil {
		t.Errorf("amr = %v", c["amr"])
	}
	if c["exp"].(float64)-c["iat"].(float64) != 3600 {
		t.Errorf("exp-iat = %v", c["exp"].(float64)-c["iat"].(float64))
	}
	for _, k := range []string{"session_id", "amr", "exp", "iat"} {
		delete(c, k)
	}
	want := map[string]any{
		"iss": "http://127.0.0.1:54321/auth/v1", "aud": "authenticated", "sub": authID, "role": "authenticated",
		"aal": "aal1", "phone": phone[1:], "email": "", "is_anonymous": false,
		"app_metadata":  map[string]any{"provider": "phone", "providers": []any{"phone"}},
		"user_metadata": map[string]any{},
	}
	if a, b := fmt.Sprint(c), fmt.Sprint(want); a != b {
		t.Errorf("claims = %s\nwant     %s", a, b)
	}
}

func TestVerifyRefusesWrongCode(t *testing.T) {
	t.Parallel()
	strict := newTestServer(t, func(c *Config) { c.AnyOTP = false })
	r := call(t, "POST", strict.URL+"/auth/v1/verify", map[string]string{"type": "sms", "phone": "+15555550101", "token": "654321"})
	wantError(t, r, 403, "otp_expired")
	r = call(t, "POST", strict.URL+"/auth/v1/verify", map[string]string{"type": "sms", "phone": freshPhone(), "token": "123456"})
	wantError(t, r, 403, "otp_expired")

	// Without the any-OTP convenience, the code "sent" to a fresh number works once.
	phone := freshPhone()
	if r := call(t, "POST", strict.URL+"/auth/v1/otp", map[string]any{"phone": phone}); r.status != 200 {
		t.Fatalf("otp = %d %s", r.status, r.body)
	}
	var code string
	db := testenv.DB(t)
	if err := db.QueryRow(context.Background(), `select code from devauth.otp_sends where phone = $1`, phone[1:]).Scan(&code); err != nil {
		t.Fatal(err)
	}
	if r := call(t, "POST", strict.URL+"/auth/v1/verify", map[string]string{"type": "sms", "phone": phone, "token": code}); r.status != 200 {
		t.Fatalf("verify with the sent code = %d %s", r.status, r.body)
	}
	r = call(t, "POST", strict.URL+"/auth/v1/verify", map[string]string{"type": "sms", "phone": phone, "token": code})
	wantError(t, r, 403, "otp_expired")
}

func TestOTPSendRateLimit(t *testing.T) {
	t.Parallel()
	hs := newTestServer(t, func(c *Config) { c.OTPInterval = time.Minute })
	phone := freshPhone()
	if r := call(t, "POST", hs.URL+"/auth/v1/otp", map[string]any{"phone": phone, "create_user": true}); r.status != 200 {
		t.Fatalf("first otp = %d %s", r.status, r.body)
	}
	r := call(t, "POST", hs.URL+"/auth/v1/otp", map[string]any{"phone": phone, "create_user": true})
	wantError(t, r, 429, "over_sms_send_rate_limit")
	if !regexp.MustCompile(`^For security purposes, you can only request this after \d+ seconds\.$`).MatchString(
		string(regexp.MustCompile(`"msg":"([^"]*)"`).FindSubmatch(r.body)[1])) {
		t.Errorf("message = %s", r.body)
	}
	r = call(t, "POST", hs.URL+"/auth/v1/otp", map[string]any{"phone": freshPhone(), "create_user": false})
	wantError(t, r, 422, "otp_disabled")
}

func refresh(t *testing.T, base, tok string) reply {
	t.Helper()
	return call(t, "POST", base+"/auth/v1/token?grant_type=refresh_token", map[string]string{"refresh_token": tok})
}

func sessionID(t *testing.T, access string) string {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(access, c); err != nil {
		t.Fatal(err)
	}
	return c["session_id"].(string)
}

func stats(t *testing.T, base, tok string) (total, forToken int64) {
	t.Helper()
	var s struct {
		Total int64 `json:"refresh_exchanges"`
		Token int64 `json:"token_exchanges"`
	}
	call(t, "GET", base+"/auth/v1/_dev/stats?refresh_token="+tok, nil).json(t, &s)
	return s.Total, s.Token
}

func TestRefreshRotationAndReuse(t *testing.T) {
	t.Parallel()
	hs := newTestServer(t, func(c *Config) { c.ReuseInterval = time.Hour })
	late := newTestServer(t, func(c *Config) { c.ReuseInterval = 0 }) // every earlier use is "after the interval"
	s0 := signIn(t, hs.URL, freshPhone())
	a := s0.RefreshToken

	r := refresh(t, hs.URL, a)
	if r.status != 200 {
		t.Fatalf("refresh A = %d %s", r.status, r.body)
	}
	var s1 sessionJSON
	r.json(t, &s1)
	b := s1.RefreshToken
	if b == a || sessionID(t, s1.AccessToken) != sessionID(t, s0.AccessToken) || s1.User.ID != s0.User.ID {
		t.Fatalf("rotation: new token %q (old %q), session %s vs %s", b, a, sessionID(t, s1.AccessToken), sessionID(t, s0.AccessToken))
	}
	if _, n := stats(t, hs.URL, a); n != 1 {
		t.Errorf("exchanges of A = %d, want 1", n)
	}

	// The immediate parent of the active token returns the active token, even after the reuse interval.
	var again sessionJSON
	refresh(t, late.URL, a).json(t, &again)
	if again.RefreshToken != b {
		t.Fatalf("re-presenting A gave %q, want the active %q", again.RefreshToken, b)
	}

	var s2 sessionJSON
	refresh(t, hs.URL, b).json(t, &s2)
	c := s2.RefreshToken
	if c == b || c == a {
		t.Fatalf("second rotation gave %q", c)
	}
	// A is no longer the parent of the active token: within the interval it still yields the active session.
	var within sessionJSON
	refresh(t, hs.URL, a).json(t, &within)
	if within.RefreshToken != c {
		t.Fatalf("reuse within the interval gave %q, want the active %q", within.RefreshToken, c)
	}
	// After the interval: refused, and the whole family is revoked.
	wantError(t, refresh(t, late.URL, a), 400, "refresh_token_already_used")
	wantError(t, refresh(t, hs.URL, c), 400, "refresh_token_already_used")
	wantError(t, call(t, "GET", hs.URL+"/auth/v1/user", nil, "Authorization", "Bearer "+s2.AccessToken), 403, "session_not_found")
	if _, n := stats(t, hs.URL, a); n != 4 {
		t.Errorf("exchanges of A = %d, want 4", n)
	}
	wantError(t, refresh(t, hs.URL, "nosuchtoken1"), 400, "refresh_token_not_found")
}

func TestUserAndLogout(t *testing.T) {
	t.Parallel()
	hs := newTestServer(t, nil)
	wantError(t, call(t, "GET", hs.URL+"/auth/v1/user", nil), 401, "no_authorization")
	wantError(t, call(t, "GET", hs.URL+"/auth/v1/user", nil, "Authorization", "Bearer not.a.jwt"), 403, "bad_jwt")
	s := signIn(t, hs.URL, freshPhone())
	other := signIn(t, hs.URL, "+"+s.User.Phone)

	r := call(t, "GET", hs.URL+"/auth/v1/user", nil, "Authorization", "Bearer "+s.AccessToken)
	var u map[string]any
	r.json(t, &u)
	for _, k := range []string{"id", "aud", "role", "email", "phone", "phone_confirmed_at", "confirmed_at",
		"last_sign_in_at", "app_metadata", "user_metadata", "identities", "created_at", "updated_at", "is_anonymous"} {
		if _, ok := u[k]; !ok {
			t.Errorf("user object lacks %q: %s", k, r.body)
		}
	}
	if u["id"] != s.User.ID {
		t.Errorf("user id = %v, want %s", u["id"], s.User.ID)
	}
	// A token minted directly by tests (random session id, real user) is accepted, as documented.
	tu := testenv.User{AuthID: s.User.ID, Phone: "+" + s.User.Phone}
	if r := call(t, "GET", hs.URL+"/auth/v1/user", nil, "Authorization", "Bearer "+tu.Token(t, time.Minute)); r.status != 200 {
		t.Errorf("testenv token: %d %s", r.status, r.body)
	}
	wantError(t, call(t, "GET", hs.URL+"/auth/v1/user", nil, "Authorization", "Bearer "+tu.Token(t, -time.Minute)), 403, "bad_jwt")

	if r := call(t, "POST", hs.URL+"/auth/v1/logout?scope=local", nil, "Authorization", "Bearer "+s.AccessToken); r.status != 204 {
		t.Fatalf("logout = %d %s", r.status, r.body)
	}
	wantError(t, call(t, "GET", hs.URL+"/auth/v1/user", nil, "Authorization", "Bearer "+s.AccessToken), 403, "session_not_found")
	wantError(t, refresh(t, hs.URL, s.RefreshToken), 400, "refresh_token_not_found")
	// The other session of the same user survives a local logout, not a global one.
	if r := call(t, "GET", hs.URL+"/auth/v1/user", nil, "Authorization", "Bearer "+other.AccessToken); r.status != 200 {
		t.Fatalf("other session after local logout: %d %s", r.status, r.body)
	}
	third := signIn(t, hs.URL, "+"+s.User.Phone)
	call(t, "POST", hs.URL+"/auth/v1/logout", nil, "Authorization", "Bearer "+third.AccessToken)
	wantError(t, call(t, "GET", hs.URL+"/auth/v1/user", nil, "Authorization", "Bearer "+other.AccessToken), 403, "session_not_found")
}

func TestPasswordGrant(t *testing.T) {
	t.Parallel()
	hs := newTestServer(t, func(c *Config) { c.AnyOTP = false })
	url := hs.URL + "/auth/v1/token?grant_type=password"
	r := call(t, "POST", url, map[string]string{"phone": "+15555550101", "password": "password123"})
	if r.status != 200 {
		t.Fatalf("password grant = %d %s", r.status, r.body)
	}
	var s sessionJSON
	r.json(t, &s)
	if s.User.Phone != "15555550101" || s.AccessToken == "" {
		t.Fatalf("session = %+v", s)
	}
	wantError(t, call(t, "POST", url, map[string]string{"phone": "+15555550101", "password": "nope"}), 400, "invalid_credentials")
	wantError(t, call(t, "POST", url, map[string]string{"phone": freshPhone(), "password": "password123"}), 400, "invalid_credentials")
}

func TestGatewayAPIKeyAndJWKS(t *testing.T) {
	t.Parallel()
	hs := newTestServer(t, nil)
	for _, path := range []string{"/auth/v1/otp", "/auth/v1/user", "/auth/v1/token?grant_type=refresh_token", "/rest/v1/users", "/storage/v1/object/x"} {
		if r := call(t, "POST", hs.URL+path, map[string]string{}, "apikey", ""); r.status != 401 {
			t.Errorf("%s without apikey = %d, want 401", path, r.status)
		}
		if r := call(t, "POST", hs.URL+path, map[string]string{}, "apikey", "wrong"); r.status != 401 {
			t.Errorf("%s with a wrong apikey = %d, want 401", path, r.status)
		}
	}
	if r := call(t, "GET", hs.URL+"/storage/v1/object/x", nil); r.status != 501 || !strings.Contains(string(r.body), "storage is not available") {
		t.Errorf("storage = %d %s", r.status, r.body)
	}

	r := call(t, "GET", hs.URL+"/auth/v1/.well-known/jwks.json", nil, "apikey", "")
	if r.status != 200 || r.header.Get("Cache-Control") != "public, max-age=600" {
		t.Fatalf("jwks = %d %v", r.status, r.header)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	r.json(t, &set)
	if len(set.Keys) != 1 {
		t.Fatalf("keys = %s", r.body)
	}
	for k := range set.Keys[0] {
		switch k {
		case "kty", "crv", "alg", "kid", "x", "y", "use", "key_ops":
		default:
			t.Errorf("JWKS key has field %q: %s", k, r.body)
		}
	}
	if set.Keys[0]["kty"] != "EC" || set.Keys[0]["kid"] != devkeys.KID {
		t.Errorf("key = %v", set.Keys[0])
	}
	var oidc map[string]any
	call(t, "GET", hs.URL+"/auth/v1/.well-known/openid-configuration", nil, "apikey", "").json(t, &oidc)
	if oidc["issuer"] != "http://127.0.0.1:54321/auth/v1" || oidc["jwks_uri"] != "http://127.0.0.1:54321/auth/v1/.well-known/jwks.json" {
		t.Errorf("openid-configuration = %v", oidc)
	}
}

func TestRestProxyToPostgREST(t *testing.T) {
	t.Parallel()
	hs := newTestServer(t, nil)
	// Service-role key as the only credential: forwarded as the Bearer, like the hosted gateway.
	r := call(t, "GET", hs.URL+"/rest/v1/users?select=username&username=eq.alice", nil,
		"apikey", devkeys.ServiceRoleKey(), "Prefer", "count=exact")
	if r.status != 200 || strings.ReplaceAll(string(r.body), " ", "") != `[{"username":"alice"}]` {
		t.Fatalf("proxy = %d %s", r.status, r.body)
	}
	if cr := r.header.Get("Content-Range"); cr != "0-0/1" {
		t.Errorf("Content-Range = %q, want 0-0/1 (headers pass both ways)", cr)
	}
	// A signed-in user's token reaches PostgREST and passes its JWT check (ES256 via the JWKS given as jwt-secret).
	s := signIn(t, hs.URL, "+15555550101")
	r = call(t, "GET", hs.URL+"/rest/v1/users?select=username&limit=1", nil, "Authorization", "Bearer "+s.AccessToken)
	if r.status != 200 {
		t.Fatalf("proxy with a user token = %d %s", r.status, r.body)
	}
	r = call(t, "GET", hs.URL+"/rest/v1/users", nil, "Authorization", "Bearer not-a-jwt")
	if r.status != 401 {
		t.Errorf("proxy with a bad token = %d, want PostgREST's 401", r.status)
	}
}

func TestParseTestOTPs(t *testing.T) {
	t.Parallel()
	in := `[auth.sms]
enable_signup = true
[auth.sms.test_otp]
15555550101 = "123456"
"+1 555 555 0102" = "654321" # comment
[analytics]
15555550103 = "999999"
`
	got, err := parseTestOTPs(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"15555550101": "123456", "15555550102": "654321"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseTestOTPs = %v, want %v", got, want)
	}
	list, err := parseOTPList("15555550104=111111, +15555550105=222222")
	if err != nil || fmt.Sprint(list) != fmt.Sprint(map[string]string{"15555550104": "111111", "15555550105": "222222"}) {
		t.Errorf("parseOTPList = %v, %v", list, err)
	}
	if _, err := parseOTPList("garbage"); err == nil {
		t.Error("parseOTPList accepted garbage")
	}
}

func TestCookieValue(t *testing.T) {
	t.Parallel()
	if got := cookieName("http://127.0.0.1:54321"); got != "sb-127-auth-token" {
		t.Errorf("cookieName = %q", got)
	}
	if got := cookieValue([]byte(`{"a":"?>"}`)); got != "base64-eyJhIjoiPz4ifQ" {
		t.Errorf("cookieValue = %q", got)
	}
}

func TestExtraJWKSNeverLeaksPrivateMaterial(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/extra.json"
	extra := `{"keys":[{"kty":"EC","crv":"P-256","kid":"next","x":"AA","y":"BB","d":"SECRET"},{"kty":"oct","k":"SECRET"}]}`
	if err := os.WriteFile(path, []byte(extra), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := mergeJWKS(devkeys.PublicJWKS(), path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), "SECRET") || !strings.Contains(string(got), `"kid":"next"`) ||
		!strings.Contains(string(got), devkeys.KID) {
		t.Errorf("merged JWKS = %s", got)
	}
}

func TestPrintFlags(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-print-keys"}, &out, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	want := "SUPABASE_ANON_KEY=" + devkeys.AnonKey() + "\nSUPABASE_SERVICE_ROLE_KEY=" + devkeys.ServiceRoleKey() +
		"\nSUPABASE_JWT_SECRET=" + devkeys.JWTSecret + "\n"
	if out.String() != want {
		t.Errorf("-print-keys = %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"-print-postgrest-jwks"}, &out, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != string(devkeys.PostgRESTJWKS()) {
		t.Errorf("-print-postgrest-jwks = %s", out.String())
	}
	if err := run(context.Background(), nil, &out, func(string) string { return "" }); err == nil ||
		!strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("run without DATABASE_URL: %v", err)
	}
}
