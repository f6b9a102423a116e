package middleware

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// refreshStack: our key server, an Auth-like refresh endpoint signing with the published key, and the full chain.
type refreshStack struct {
	*authStack
	auth *authServer
}

func newRefreshStack(t *testing.T, shared SharedStore) *refreshStack {
	t.Helper()
	ec := newECSigner(t, "ec-"+testenv.RandomHex(4))
	ks := newKeyServer(t, ec.jwk())
	auth := newAuthServer(t, ec)
	st := &authStack{ks: ks, ec: ec, v: newTestVerifier(t, ks), echo: &echoHandler{}}
	st.srv = httptest.NewServer(st.chain(t, httpRefresher{base: auth.srv.URL, c: auth.srv.Client()}, shared, true))
	t.Cleanup(st.srv.Close)
	return &refreshStack{authStack: st, auth: auth}
}

// expiredSession returns a cookie header holding an expired (genuinely signed) session with a live refresh token.
func (rs *refreshStack) expiredSession(t *testing.T, sub string, ttl time.Duration) (cookie, refreshToken string) {
	t.Helper()
	rt := rs.auth.issue(sub)
	tok := rs.ec.sign(t, userClaims(sub, ttl))
	return cookieHeader(testCookie, sessionJSON(t, tok, rt, sub, time.Now().Add(ttl), nil)), rt
}

// cookiesBack turns a response's Set-Cookie headers into a Cookie header for a follow-up request (live ones only).
func cookiesBack(resp *http.Response) (header string, deleted []string) {
	var parts []string
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			deleted = append(deleted, c.Name)
			continue
		}
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; "), deleted
}

func TestRefreshExpiredCookie(t *testing.T) {
	t.Parallel()
	rs := newRefreshStack(t, nil)
	sub := newUUID()
	cookie, _ := rs.expiredSession(t, sub, -time.Minute)

	resp, body := doReq(t, rs.srv.URL, "", cookie)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, body %s", resp.StatusCode, body)
	}
	var got echoBody
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Refreshed || got.UID != sub || got.Source != SourceCookie {
		t.Errorf("identity = %+v, want refreshed cookie identity of %s", got, sub)
	}
	if n := rs.auth.exchanges.Load(); n != 1 {
		t.Errorf("exchanges = %d, want 1", n)
	}
	// Parse the new cookie back, exactly as the browser would send it.
	back, _ := cookiesBack(resp)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Cookie", back)
	sess, err := ReadSessionCookie(req, testCookie)
	if err != nil {
		t.Fatalf("new cookie does not parse: %v (Set-Cookie %v)", err, resp.Header.Values("Set-Cookie"))
	}
	if sess.AccessToken != got.Token || sess.RefreshToken == "" || sess.ExpiresAt <= time.Now().Unix() || len(sess.User) == 0 {
		t.Errorf("new session = %+v", sess)
	}
	for _, sc := range resp.Header.Values("Set-Cookie") {
		if !strings.Contains(sc, "Path=/") || !strings.Contains(sc, "Max-Age=34560000") || !strings.Contains(sc, "SameSite=Lax") || strings.Contains(sc, "HttpOnly") {
			t.Errorf("Set-Cookie attributes: %s", sc)
		}
	}
	// The refreshed cookie now works without another exchange.
	resp, body = doReq(t, rs.srv.URL, "", back)
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || got.Refreshed {
		t.Errorf("follow-up: %d %s", resp.StatusCode, body)
	}
	if n := rs.auth.exchanges.Load(); n != 1 {
		t.Errorf("exchanges after follow-up = %d, want 1", n)
	}
}

// TestRefreshFillsExpiresAt: Auth omitting expires_at still yields a cookie the browser accepts.
func TestRefreshFillsExpiresAt(t *testing.T) {
	t.Parallel()
	rs := newRefreshStack(t, nil)
	rs.auth.omitExpAt = true
	cookie, _ := rs.expiredSession(t, newUUID(), -time.Minute)
	resp, body := doReq(t, rs.srv.URL, "", cookie)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	back, _ := cookiesBack(resp)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Cookie", back)
	sess, err := ReadSessionCookie(req, testCookie)
	if err != nil {
		t.Fatal(err)
	}
	if d := sess.ExpiresAt - time.Now().Unix(); d < 3500 || d > 3700 {
		t.Errorf("expires_at - now = %d, want about 3600", d)
	}
}

func TestRefreshConcurrentSingleExchange(t *testing.T) {
	t.Parallel()
	rs := newRefreshStack(t, nil)
	rs.auth.delay = 50 * time.Millisecond // keeps the requests overlapping; correctness does not depend on it
	cookie, _ := rs.expiredSession(t, newUUID(), -time.Minute)
	tokens := make([]string, 10)
	var wg sync.WaitGroup
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := doReq(t, rs.srv.URL, "", cookie)
			var got echoBody
			if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || !got.Refreshed {
				t.Errorf("request %d: %d %s", i, resp.StatusCode, body)
				return
			}
			tokens[i] = got.Token
		}()
	}
	wg.Wait()
	if n := rs.auth.exchanges.Load(); n != 1 {
		t.Errorf("exchanges = %d, want exactly 1", n)
	}
	for i, tok := range tokens {
		if tok != tokens[0] {
			t.Errorf("request %d got a different access token", i)
		}
	}
}

func TestRefreshNearExpiry(t *testing.T) {
	t.Parallel()
	rs := newRefreshStack(t, nil)
	// 5 s left: refreshed.
	cookie, _ := rs.expiredSession(t, newUUID(), 5*time.Second)
	resp, body := doReq(t, rs.srv.URL, "", cookie)
	var got echoBody
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || !got.Refreshed {
		t.Fatalf("5 s left: %d %s", resp.StatusCode, body)
	}
	// 5 min left: used as is, no exchange (the browser refreshes on its own; the server must not race it).
	cookie, _ = rs.expiredSession(t, newUUID(), 5*time.Minute)
	resp, body = doReq(t, rs.srv.URL, "", cookie)
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || got.Refreshed {
		t.Fatalf("5 min left: %d %s", resp.StatusCode, body)
	}
	if len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("cookie written without refresh: %v", resp.Header.Values("Set-Cookie"))
	}
	if n := rs.auth.exchanges.Load(); n != 1 {
		t.Errorf("exchanges = %d, want 1", n)
	}
}

func TestRefreshRejectedClearsCookie(t *testing.T) {
	t.Parallel()
	rs := newRefreshStack(t, nil)
	sub := newUUID()
	rt := rs.auth.issue(sub)
	// A chunked session (large user metadata) so that every chunk must be deleted.
	big := map[string]any{"bio": strings.Repeat("x", 5000)}
	sess := sessionJSON(t, rs.ec.sign(t, userClaims(sub, -time.Minute)), rt, sub, time.Now().Add(-time.Minute), big)
	rec := httptest.NewRecorder()
	WriteSessionCookie(rec, httptest.NewRequest(http.MethodGet, "/", nil), testCookie, sess, false)
	cookie, _ := cookiesBack(rec.Result())
	if !strings.Contains(cookie, testCookie+".2=") {
		t.Fatalf("expected at least 3 chunks, got %q", cookie[:80])
	}
	rs.auth.mode.Store("reject")

	resp, body := doReq(t, rs.srv.URL, "", cookie)
	if got, want := resp.StatusCode, http.StatusUnauthorized; got != want {
		t.Fatalf("status = %d, want %d (%s)", got, want, body)
	}
	if got, want := string(body), `{"error":"Unauthorized"}`; got != want {
		t.Errorf("body = %s", got)
	}
	_, deleted := cookiesBack(resp)
	want := map[string]bool{testCookie: true, testCookie + ".0": true, testCookie + ".1": true, testCookie + ".2": true}
	for _, d := range deleted {
		delete(want, d)
	}
	if len(want) != 0 {
		t.Errorf("cookies not deleted: %v (deleted %v)", want, deleted)
	}
	if n := rs.echo.reached.Load(); n != 0 {
		t.Errorf("handler reached %d times", n)
	}
}

func TestRefreshAuthDownIs503(t *testing.T) {
	t.Parallel()
	rs := newRefreshStack(t, nil)
	rs.auth.mode.Store("down")
	cookie, _ := rs.expiredSession(t, newUUID(), -time.Minute)
	resp, body := doReq(t, rs.srv.URL, "", cookie)
	if got, want := resp.StatusCode, http.StatusServiceUnavailable; got != want {
		t.Fatalf("status = %d, want %d (%s)", got, want, body)
	}
	if got, want := string(body), `{"error":"Authentication service unavailable"}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("cookie touched on outage: %v", sc)
	}
	// Auth back: the same cookie refreshes (an outage is not remembered).
	rs.auth.mode.Store("ok")
	resp, body = doReq(t, rs.srv.URL, "", cookie)
	if resp.StatusCode != 200 {
		t.Errorf("after recovery: %d %s", resp.StatusCode, body)
	}

	// Network failure (Auth unreachable) is an outage too.
	rs2 := newRefreshStack(t, nil)
	cookie, _ = rs2.expiredSession(t, newUUID(), -time.Minute)
	rs2.auth.srv.Close()
	resp, _ = doReq(t, rs2.srv.URL, "", cookie)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("unreachable Auth: status %d, want 503", resp.StatusCode)
	}
}

// TestBearerNeverRefreshed: an expired Bearer is not refreshed, and a valid Bearer makes the expired cookie moot.
func TestBearerNeverRefreshed(t *testing.T) {
	t.Parallel()
	rs := newRefreshStack(t, nil)
	sub := newUUID()
	resp, _ := doReq(t, rs.srv.URL, "Bearer "+rs.ec.sign(t, userClaims(sub, -time.Minute)), "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired bearer: %d", resp.StatusCode)
	}
	cookie, _ := rs.expiredSession(t, sub, -time.Minute)
	resp, body := doReq(t, rs.srv.URL, "Bearer "+rs.ec.sign(t, userClaims(sub, time.Hour)), cookie)
	var got echoBody
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || got.Source != SourceBearer {
		t.Errorf("valid bearer + expired cookie: %d %s", resp.StatusCode, body)
	}
	if n := rs.auth.exchanges.Load(); n != 0 {
		t.Errorf("exchanges = %d, want 0", n)
	}
}

// TestPublicRouteWithDeadCookie: Authenticate alone never blocks (login must work with a dead session cookie).
func TestPublicRouteWithDeadCookie(t *testing.T) {
	t.Parallel()
	rs := newRefreshStack(t, nil)
	srv := httptest.NewServer(rs.chain(t, httpRefresher{base: rs.auth.srv.URL, c: rs.auth.srv.Client()}, nil, false))
	t.Cleanup(srv.Close)
	rs.auth.mode.Store("reject")
	cookie, _ := rs.expiredSession(t, newUUID(), -time.Minute)
	resp, body := doReq(t, srv.URL, "", cookie)
	var got echoBody
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || got.OK || got.Reason != FailRefreshRejected {
		t.Errorf("public route: %d %s", resp.StatusCode, body)
	}
	if _, deleted := cookiesBack(resp); len(deleted) == 0 {
		t.Error("dead cookie not deleted")
	}
}

// crossNode runs two Authenticators ("nodes") that share store, fires concurrent requests carrying the same expired
// cookie at both, and wants exactly one exchange.
func crossNode(t *testing.T, store func() SharedStore) {
	t.Helper()
	ec := newECSigner(t, "ec-"+testenv.RandomHex(4))
	ks := newKeyServer(t, ec.jwk())
	auth := newAuthServer(t, ec)
	auth.delay = 50 * time.Millisecond
	var urls []string
	for range 2 {
		st := &authStack{ks: ks, ec: ec, v: newTestVerifier(t, ks), echo: &echoHandler{}}
		srv := httptest.NewServer(st.chain(t, httpRefresher{base: auth.srv.URL, c: auth.srv.Client()}, store(), true))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	sub := newUUID()
	rt := auth.issue(sub)
	cookie := cookieHeader(testCookie, sessionJSON(t, ec.sign(t, userClaims(sub, -time.Minute)), rt, sub, time.Now(), nil))
	var wg sync.WaitGroup
	tokens := make([]string, 10)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := doReq(t, urls[i%2], "", cookie)
			var got echoBody
			if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
				t.Errorf("request %d: %d %s", i, resp.StatusCode, body)
				return
			}
			tokens[i] = got.Token
		}()
	}
	wg.Wait()
	if n := auth.exchanges.Load(); n != 1 {
		t.Errorf("exchanges across two nodes = %d, want 1", n)
	}
	for i := range tokens {
		if tokens[i] != tokens[0] {
			t.Errorf("node answer %d differs", i)
		}
	}
}

func TestCrossNodeRefreshMemoryStore(t *testing.T) {
	t.Parallel()
	s := NewMemorySharedStore()
	crossNode(t, func() SharedStore { return s })
}

func TestCrossNodeRefreshRedis(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	prefix := "suparelay-test:" + testenv.RandomHex(6) + ":"
	var clients []*redis.Client
	t.Cleanup(func() {
		ctx := context.Background()
		if len(clients) > 0 {
			keys, _ := clients[0].Keys(ctx, prefix+"*").Result()
			if len(keys) > 0 {
				clients[0].Del(ctx, keys...)
			}
		}
		for _, c := range clients {
			_ = c.Close()
		}
	})
	crossNode(t, func() SharedStore {
		c := redis.NewClient(opt) // one client per node, like two processes
		clients = append(clients, c)
		return NewRedisSharedStore(c, prefix)
	})
	// The shared result must not reveal the session to a reader of Redis.
	ctx := context.Background()
	keys, err := clients[0].Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no shared refresh result in Redis")
	}
	for _, k := range keys {
		v, _ := clients[0].Get(ctx, k).Bytes()
		if strings.Contains(string(v), "access_token") || strings.Contains(string(v), "eyJ") {
			t.Errorf("key %s holds a plaintext session", k)
		}
	}
}

// TestSharedStoreContract runs the same checks against both SharedStore implementations.
func TestSharedStoreContract(t *testing.T) {
	t.Parallel()
	stores := map[string]func(t *testing.T) SharedStore{
		"memory": func(*testing.T) SharedStore { return NewMemorySharedStore() },
		"redis": func(t *testing.T) SharedStore {
			opt, err := redis.ParseURL(testenv.RedisURL(t))
			if err != nil {
				t.Fatal(err)
			}
			c := redis.NewClient(opt)
			t.Cleanup(func() { _ = c.Close() })
			return NewRedisSharedStore(c, "suparelay-test:"+testenv.RandomHex(6)+":")
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, ctx := mk(t), context.Background()
			if _, ok, err := s.Get(ctx, "k"); ok || err != nil {
				t.Fatalf("Get(missing) = %v, %v", ok, err)
			}
			if ok, err := s.SetNX(ctx, "k", []byte("a"), time.Minute); !ok || err != nil {
				t.Fatalf("first SetNX = %v, %v", ok, err)
			}
			if ok, err := s.SetNX(ctx, "k", []byte("b"), time.Minute); ok || err != nil {
				t.Fatalf("second SetNX = %v, %v", ok, err)
			}
			if v, ok, err := s.Get(ctx, "k"); string(v) != "a" || !ok || err != nil {
				t.Fatalf("Get = %q %v %v", v, ok, err)
			}
			if err := s.Set(ctx, "k", []byte("c"), time.Minute); err != nil {
				t.Fatal(err)
			}
			if v, _, _ := s.Get(ctx, "k"); string(v) != "c" {
				t.Fatalf("after Set: %q", v)
			}
			if err := s.Del(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := s.Get(ctx, "k"); ok {
				t.Fatal("key survived Del")
			}
			if err := s.Del(ctx, "never-set"); err != nil {
				t.Fatalf("Del(missing) = %v", err)
			}
			// DelIfValue releases only the holder's own value (a lock taken over by another node stays).
			if ok, _ := s.SetNX(ctx, "lock", []byte("mine"), time.Minute); !ok {
				t.Fatal("SetNX lock")
			}
			if err := s.DelIfValue(ctx, "lock", []byte("theirs")); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := s.Get(ctx, "lock"); !ok {
				t.Fatal("DelIfValue with another value removed the lock")
			}
			if err := s.DelIfValue(ctx, "lock", []byte("mine")); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := s.Get(ctx, "lock"); ok {
				t.Fatal("DelIfValue with the holder's value kept the lock")
			}
			if err := s.DelIfValue(ctx, "never-set", []byte("x")); err != nil {
				t.Fatalf("DelIfValue(missing) = %v", err)
			}
		})
	}
}
