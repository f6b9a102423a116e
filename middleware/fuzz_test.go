package middleware

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// FuzzReadSessionCookie: any Cookie header either yields a session with an access token or an error; never a panic.
// Run: go test ./middleware -run '^$' -fuzz FuzzReadSessionCookie -fuzztime 30s
func FuzzReadSessionCookie(f *testing.F) {
	sess := `{"access_token":"a.b.c","refresh_token":"r","expires_at":1700000000,"expires_in":3600,"user":{"id":"x"}}`
	enc := "base64-" + base64.RawURLEncoding.EncodeToString([]byte(sess))
	for _, seed := range []string{
		"", testCookie + "=" + enc, testCookie + ".0=" + enc[:20] + "; " + testCookie + ".1=" + enc[20:],
		testCookie + "=" + strings.ReplaceAll(sess, `"`, "%22"), testCookie + "=base64-%", testCookie + `="quoted"`,
		testCookie + ".0=a; " + testCookie + ".0=b", testCookie + "=; " + testCookie + ".1=x", testCookie + ".999=1",
		testCookie + "=base64-" + base64.URLEncoding.EncodeToString([]byte(sess)), testCookie + "=%7B%7D",
		testCookie + "=base64-W10", ";;;==;" + testCookie, testCookie + ".-1=x; " + testCookie + ".+0=y",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", header)
		s, err := ReadSessionCookie(r, testCookie)
		if err == nil && (s == nil || s.AccessToken == "") {
			t.Fatalf("nil error without a session for %q", header)
		}
		// Writing back whatever we read must also be safe.
		if err == nil {
			WriteSessionCookie(httptest.NewRecorder(), r, testCookie, s.Raw, false)
		}
		ClearSessionCookie(httptest.NewRecorder(), r, testCookie)
	})
}

// FuzzExtractToken drives the whole caller resolution (Bearer parsing, cookie parsing, JWT verification) with
// arbitrary Authorization and Cookie headers: it must never panic and never identify anyone.
func FuzzExtractToken(f *testing.F) {
	v, err := NewVerifier(context.Background(), VerifierConfig{HS256Secret: devkeys.JWTSecret, Logger: quietLog, CacheSize: 64})
	if err != nil {
		f.Fatal(err)
	}
	a, err := NewAuthenticator(AuthConfig{Verifier: v, CookieName: testCookie, Logger: quietLog})
	if err != nil {
		f.Fatal(err)
	}
	exp, _ := devkeys.SignHS256(userClaims(newUUID(), -time.Hour))
	sess := `{"access_token":"` + exp + `","refresh_token":"r"}`
	for _, seed := range [][2]string{
		{"", ""}, {"Bearer " + exp, ""}, {"bearer   x.y.z", ""}, {"Bearer", ""}, {"Bearer eyJ.eyJ.", ""},
		{"Basic abc", testCookie + "=base64-" + base64.RawURLEncoding.EncodeToString([]byte(sess))},
		{"Bearer " + devkeys.AnonKey(), ""}, {"Bearer e30.e30.e30", testCookie + "=%7B"},
		{"Bearer eyJhbGciOiJub25lIn0.e30.", ""}, {"BEARER \t tok", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, authz, cookie string) {
		if tok, ok := BearerToken(authz); ok && (tok == "" || strings.ContainsAny(tok, " \t\r\n")) {
			t.Fatalf("BearerToken(%q) = %q", authz, tok)
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", authz)
		r.Header.Set("Cookie", cookie)
		id, reason := a.identify(httptest.NewRecorder(), r)
		if id != nil {
			t.Fatalf("fuzz input identified a caller: %+v", id)
		}
		if reason == "" {
			t.Fatal("no identity and no reason")
		}
	})
}
