package middleware

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Run: go test ./middleware -run '^$' -bench . -benchmem   (numbers in BENCHMARKS.md)

// BenchmarkVerifyCached: the per-request cost for a token seen before (SHA-256 + sharded cache lookup).
func BenchmarkVerifyCached(b *testing.B) {
	ec := newECSigner(b, "bench")
	v := newTestVerifier(b, newKeyServer(b, ec.jwk()))
	tok := ec.sign(b, userClaims(newUUID(), time.Hour))
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCachedParallel: the same under contention from all cores.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	ec := newECSigner(b, "bench")
	v := newTestVerifier(b, newKeyServer(b, ec.jwk()))
	toks := make([]string, 64)
	for i := range toks {
		toks[i] = ec.sign(b, userClaims(newUUID(), time.Hour))
		if _, err := v.Verify(context.Background(), toks[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := v.Verify(context.Background(), toks[i%len(toks)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkVerifyES256Uncached: full verification of a Supabase-shaped ES256 token (parse, JWKS key lookup,
// signature, claims) with the cache off.
func BenchmarkVerifyES256Uncached(b *testing.B) {
	ec := newECSigner(b, "bench")
	v := newTestVerifier(b, newKeyServer(b, ec.jwk()), func(c *VerifierConfig) { c.CacheSize = -1 })
	tok := ec.sign(b, userClaims(newUUID(), time.Hour))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateBearerCached: the whole Authenticate+RequireAuth middleware for a cached Bearer token.
func BenchmarkAuthenticateBearerCached(b *testing.B) {
	ec := newECSigner(b, "bench")
	v := newTestVerifier(b, newKeyServer(b, ec.jwk()))
	a, err := NewAuthenticator(AuthConfig{Verifier: v, CookieName: testCookie, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	h := a.Authenticate(RequireAuth(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	r := httptest.NewRequest(http.MethodGet, "/api/x", nil)
	r.Header.Set("Authorization", "Bearer "+ec.sign(b, userClaims(newUUID(), time.Hour)))
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
	if w.Code != 200 {
		b.Fatalf("status %d", w.Code)
	}
}

// BenchmarkReadSessionCookie: decoding a typical ~2.6 KB phone-login cookie.
func BenchmarkReadSessionCookie(b *testing.B) {
	ec := newECSigner(b, "bench")
	sub := newUUID()
	sess := sessionJSON(b, ec.sign(b, userClaims(sub, time.Hour)), "rt", sub, time.Now().Add(time.Hour), nil)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "theme=dark; "+cookieHeader(testCookie, sess))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ReadSessionCookie(r, testCookie); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckCompact: the PostgREST-parity form checks Verify adds before the signature (strict base64url of
// header and payload, the strict-JSON scan of both, the header rules) on a Supabase-shaped token.
func BenchmarkCheckCompact(b *testing.B) {
	tok := newECSigner(b, "bench").sign(b, userClaims(newUUID(), time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if err := checkCompact(tok); err != nil {
			b.Fatal(err)
		}
	}
}
