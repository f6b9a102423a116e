package middleware

import "testing"

// TestIsStringOrURI: the cases measured against PostgREST 12 (TestVerifierMatchesPostgREST has some of them as
// tokens) and the RFC 3986 corners around them.
func TestIsStringOrURI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		// No colon: any string.
		{"", true}, {"authenticated", true}, {"a b", true}, {"é", true}, {"%zz", true},
		// Absolute URIs.
		{"http://127.0.0.1:54321/auth/v1", true}, {"https://abcdefghijklmnopqrst.supabase.co/auth/v1", true},
		{"urn:x:y", true}, {"a:", true}, {"a+b-c.d:x", true}, {"http://[::1]:5/x", true}, {"http://[v1.x:y]/", false},
		{"http://user:pw@host:80/p?q=1&r=/?#frag/?", true}, {"mailto:a@b.c", true}, {"http://host", true},
		{"http://host:/p", true}, {"a:/p%20q", true}, {"a:b/c:d@e", true}, {"http://", true}, {"file:///etc", true},
		// Not URIs (PostgREST: JWTClaimsSetDecodeError).
		{"a:b c", false}, {":a", false}, {"1a:b", false}, {"a_b:c", false}, {"http://a:b:c/", false},
		{"a:%zz", false}, {"a:%2", false}, {"a:é", false}, {"http://[zz]/x", false}, {"http://[::1%eth0]/", false},
		{"http://[::1", false}, {"http://[::1]x/", false}, {"http://a@b@c/", false}, {"http://h/p#a#b", false},
		{"http://h/[x]", false}, {"http://h/\"", false}, {"a:b\\c", false}, {"http://h p/", false},
		{"http://[1.2.3.4]/", false}, {"a:b\x00", false},
	} {
		if got := isStringOrURI(tc.s); got != tc.ok {
			t.Errorf("isStringOrURI(%q) = %v, want %v", tc.s, got, tc.ok)
		}
	}
}
