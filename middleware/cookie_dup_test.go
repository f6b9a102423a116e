package middleware

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chunked renders a session as chunk cookies .0 … .n-1 (values split evenly).
func chunked(name string, session []byte, n int) []string {
	enc := "base64-" + base64.RawURLEncoding.EncodeToString(session)
	var out []string
	for i := range n {
		out = append(out, name+"."+strconv.Itoa(i)+"="+enc[i*len(enc)/n:(i+1)*len(enc)/n])
	}
	return out
}

// interleave merges cookie lists a and b alternately, as a browser may order two jars' cookies.
func interleave(a, b []string) string {
	var out []string
	for i := 0; i < len(a) || i < len(b); i++ {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return strings.Join(out, "; ")
}

// TestDuplicateSessionCookies: a request carrying the session cookie name more than once (a sibling subdomain's
// cookie, another path's, a stale jar) is identified by the first candidate session that verifies, never refused
// for the duplicate itself (issue 11).
func TestDuplicateSessionCookies(t *testing.T) {
	t.Parallel()
	st := newAuthStack(t, nil, nil)
	other := newECSigner(t, st.ec.kid) // same kid, another key: a session from elsewhere that does not verify here
	alice, bob := newUUID(), newUUID()
	exp := time.Now().Add(time.Hour)
	good := sessionJSON(t, st.ec.sign(t, userClaims(alice, time.Hour)), "rt-a", alice, exp, nil)
	goodBob := sessionJSON(t, st.ec.sign(t, userClaims(bob, time.Hour)), "rt-b", bob, exp, nil)
	foreign := sessionJSON(t, other.sign(t, userClaims(bob, time.Hour)), "rt-f", bob, exp, nil)
	expired := sessionJSON(t, st.ec.sign(t, userClaims(bob, -time.Hour)), "rt-e", bob, exp.Add(-2*time.Hour), nil)
	crit := sessionJSON(t, edgeSigner{ec: st.ec.key, kid: st.ec.kid}.sign(t, "ES256",
		`{"alg":"ES256","kid":"`+st.ec.kid+`","crit":["x"],"x":1}`, mustJSON(t, userClaims(bob, time.Hour))), "rt-c", bob, exp, nil)
	// A large session, so that it needs three chunks in any test below.
	bigGood := sessionJSON(t, st.ec.sign(t, userClaims(alice, time.Hour)), "rt-a", alice, exp, map[string]any{"pad": strings.Repeat("p", 4000)})

	cases := []struct {
		name, cookie string
		want         string
	}{
		{"foreign first, ours second", cookieHeader(testCookie, foreign) + "; " + cookieHeader(testCookie, good), alice},
		{"ours first, foreign second", cookieHeader(testCookie, good) + "; " + cookieHeader(testCookie, foreign), alice},
		{"two valid sessions: the first wins", cookieHeader(testCookie, goodBob) + "; " + cookieHeader(testCookie, good), bob},
		{"expired (no refresher) first, valid second", cookieHeader(testCookie, expired) + "; " + cookieHeader(testCookie, good), alice},
		{"token with crit first, valid second", cookieHeader(testCookie, crit) + "; " + cookieHeader(testCookie, good), alice},
		{"undecodable first, valid second", testCookie + "=base64-!!!; " + cookieHeader(testCookie, good), alice},
		{"empty first, valid second", testCookie + "=; " + cookieHeader(testCookie, good), alice},
		{"the same cookie twice", cookieHeader(testCookie, good) + "; " + cookieHeader(testCookie, good), alice},
		{"same chunk twice", strings.Join(chunked(testCookie, good, 2), "; ") + "; " + chunked(testCookie, good, 2)[1], alice},
		{"foreign base, valid chunks", cookieHeader(testCookie, foreign) + "; " + strings.Join(chunked(testCookie, good, 2), "; "), alice},
		{"valid base, foreign chunks", strings.Join(chunked(testCookie, foreign, 2), "; ") + "; " + cookieHeader(testCookie, good), alice},
		{"two chunk jars, foreign first", interleave(chunked(testCookie, foreign, 2), chunked(testCookie, good, 2)), alice},
		{"two chunk jars, ours first", interleave(chunked(testCookie, good, 2), chunked(testCookie, foreign, 2)), alice},
		{"foreign 2 chunks beside our 3", interleave(chunked(testCookie, foreign, 2), chunked(testCookie, bigGood, 3)), alice},
		{"foreign 3 chunks beside our 2", interleave(chunked(testCookie, sessionJSON(t, other.sign(t, userClaims(bob, time.Hour)), "r", bob, exp,
			map[string]any{"pad": strings.Repeat("q", 4000)}), 3), chunked(testCookie, good, 2)), alice},
		{"foreign 3 chunks then our 3", interleave(chunked(testCookie, sessionJSON(t, other.sign(t, userClaims(bob, time.Hour)), "r", bob, exp,
			map[string]any{"pad": strings.Repeat("q", 4000)}), 3), chunked(testCookie, bigGood, 3)), alice},
		{"split across header lines", "", alice}, // filled in below
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, st.srv.URL+"/api/thing", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.cookie != "" {
				req.Header.Set("Cookie", tc.cookie)
			} else {
				req.Header.Add("Cookie", cookieHeader(testCookie, foreign))
				req.Header.Add("Cookie", cookieHeader(testCookie, good))
			}
			resp, err := isolatedClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got echoBody
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, err %v", resp.StatusCode, err)
			}
			if got.UID != tc.want || got.Source != SourceCookie || got.Refreshed {
				t.Errorf("identity %+v, want %s from the cookie", got, tc.want)
			}
			if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("cookies written: %v", sc)
			}
		})
	}
}

// TestDuplicateSessionCookiesBounded: at most maxVerifiedCandidates signature checks per request, however many
// decodable sessions the cookies hold: a valid session behind four forged ones is not reached.
func TestDuplicateSessionCookiesBounded(t *testing.T) {
	t.Parallel()
	st := newAuthStack(t, nil, nil)
	sub := newUUID()
	var forged []string
	for range maxVerifiedCandidates {
		forged = append(forged, cookieHeader(testCookie, sessionJSON(t, newECSigner(t, st.ec.kid).sign(t, userClaims(sub, time.Hour)),
			"r", sub, time.Now().Add(time.Hour), nil)))
	}
	good := chunked(testCookie, sessionJSON(t, st.ec.sign(t, userClaims(sub, time.Hour)), "r", sub, time.Now().Add(time.Hour), nil), 2)
	resp, body := doReq(t, st.srv.URL, "", strings.Join(append(forged, good...), "; "))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d %s, want 401", resp.StatusCode, body)
	}
	resp, body = doReq(t, st.srv.URL, "", strings.Join(append(forged[1:], good...), "; "))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with one forged session fewer: status %d %s, want 200", resp.StatusCode, body)
	}
}

// TestDuplicateSessionCookiesRefresh: a valid session beats an earlier expired one without any refresh; when only an
// expired one is usable it is refreshed once and written back.
func TestDuplicateSessionCookiesRefresh(t *testing.T) {
	t.Parallel()
	rs := newRefreshStack(t, nil)
	alice, bob := newUUID(), newUUID()
	expiredBob, _ := rs.expiredSession(t, bob, -time.Minute)
	good := cookieHeader(testCookie, sessionJSON(t, rs.ec.sign(t, userClaims(alice, time.Hour)), "rt", alice, time.Now().Add(time.Hour), nil))

	resp, body := doReq(t, rs.srv.URL, "", expiredBob+"; "+good)
	var got echoBody
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	if got.UID != alice || got.Refreshed || rs.auth.exchanges.Load() != 0 || len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("expired then valid: identity %+v, %d exchanges, Set-Cookie %v", got, rs.auth.exchanges.Load(), resp.Header.Values("Set-Cookie"))
	}

	foreign := cookieHeader(testCookie, sessionJSON(t, newECSigner(t, rs.ec.kid).sign(t, userClaims(alice, time.Hour)), "rt-f", alice,
		time.Now().Add(time.Hour), nil))
	resp, body = doReq(t, rs.srv.URL, "", foreign+"; "+expiredBob)
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	if got.UID != bob || !got.Refreshed || rs.auth.exchanges.Load() != 1 {
		t.Errorf("foreign then expired: identity %+v, %d exchanges", got, rs.auth.exchanges.Load())
	}
	back, _ := cookiesBack(resp)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", back)
	if s, err := ReadSessionCookie(r, testCookie); err != nil || s.AccessToken != got.Token {
		t.Errorf("written cookie: %v", err)
	}
}

// TestCookieCandidates: the order in which assemblies are tried, the single-set rule, and the bounds.
func TestCookieCandidates(t *testing.T) {
	t.Parallel()
	list := func(header string) ([]string, error) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", header)
		c, err := readCarried(r, testCookie)
		if err != nil {
			return nil, err
		}
		var out []string
		err = c.candidates(func(v string) bool { out = append(out, v); return true })
		return out, err
	}
	n := testCookie
	for _, tc := range []struct {
		header string
		want   []string
	}{
		{n + "=a", []string{"a"}},
		{n + "=a; " + n + ".0=x", []string{"a", "x"}},
		{n + "=; " + n + ".0=x; " + n + ".1=y", []string{"xy"}},
		{n + ".0=x; " + n + ".1=y; " + n + ".3=z", []string{"xy"}},
		{n + "=a; " + n + "=b; " + n + "=a", []string{"a", "b", "a"}},
		{n + ".0=a0; " + n + ".0=b0; " + n + ".1=a1; " + n + ".1=b1; " + n + ".2=b2",
			[]string{"a0a1b2", "a0a1", "a0b1b2", "a0b1", "a0", "b0a1b2", "b0a1", "b0b1b2", "b0b1", "b0"}},
		{n + ".0=x; " + n + ".1=y; " + n + ".1=y", []string{"xy", "x"}},
	} {
		got, err := list(tc.header)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q, %v\nwant %q", tc.header, got, err, tc.want)
		}
	}
	// Bounded: four jars of four chunks would be hundreds of assemblies; at most maxSessionCandidates are tried.
	var parts []string
	for jar := range 4 {
		for i := range 4 {
			parts = append(parts, n+"."+strconv.Itoa(i)+"=j"+strconv.Itoa(jar))
		}
	}
	if got, err := list(strings.Join(parts, "; ")); err != nil || len(got) != maxSessionCandidates {
		t.Errorf("4 jars x 4 chunks: %d candidates, %v", len(got), err)
	}
	if _, err := list(strings.Repeat(n+"=a; ", MaxDuplicateCookies+1)); err == nil {
		t.Error("more than MaxDuplicateCookies copies accepted")
	}
	if _, err := list(strings.Repeat(n+".1=a; ", MaxDuplicateCookies+1) + n + ".0=b"); err == nil {
		t.Error("more than MaxDuplicateCookies copies of a chunk accepted")
	}
	if got, err := list(n + ".1=a; " + n + "=; other=1"); err == nil || len(got) != 0 {
		t.Errorf("nothing to try: %q, %v", got, err)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
