package middleware

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// This file holds the token edge cases of issue 11 ("token edge cases where suparelay and PostgREST disagree"), as
// one table shared by the unit test (our verifier, our own keys) and TestVerifierMatchesPostgREST (the same cases
// signed with the stack's keys and sent to the real PostgREST 12). Every case is correctly signed: these are
// tokens only a key holder can make, so refusing them is defence in depth.

// pgOutcome is what PostgREST 12 does with a token.
type pgOutcome int

const (
	pgAccepts pgOutcome = iota // 2xx
	pgRefuses                  // 401/403 with a PGRST3xx (JWT) code
	pgErrors                   // some other error: the token passes the JWT checks but the request fails
)

func (o pgOutcome) String() string {
	return [...]string{"accepts", "refuses", "errors"}[o]
}

// edgeCase is one token and what each side does with it. When pg refuses (or errors), we must refuse. When pg
// accepts and we refuse, stricter says why that is deliberate.
type edgeCase struct {
	name     string
	token    string
	pg       pgOutcome
	refuse   bool   // our Verify refuses it
	stricter string // why we refuse what PostgREST accepts (only with pg == pgAccepts && refuse)
}

// edgeSigner signs raw header and payload texts exactly as given (no re-encoding, so duplicates and odd escapes
// survive), with an ES256 key and its kid or the HS256 secret.
type edgeSigner struct {
	ec     *ecdsa.PrivateKey
	kid    string
	secret []byte
}

func (s edgeSigner) sign(t testing.TB, alg, header, payload string) string {
	t.Helper()
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	var sig []byte
	switch alg {
	case "HS256":
		m := hmac.New(sha256.New, s.secret)
		m.Write([]byte(in))
		sig = m.Sum(nil)
	case "ES256":
		var err error
		if sig, err = jwt.SigningMethodES256.Sign(in, s.ec); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("alg %s", alg)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// edgeCases builds the table for signer s, with iss the issuer the verifier under test expects.
func edgeCases(t testing.TB, s edgeSigner, iss string) []edgeCase {
	t.Helper()
	now := time.Now().Unix()
	sub := newUUID()
	esH := `{"alg":"ES256","kid":"` + s.kid + `","typ":"JWT"}`
	hsH := `{"alg":"HS256","typ":"JWT"}`
	// body is a Supabase-shaped user payload with extra members appended (which may repeat earlier ones).
	body := func(extra string) string {
		return fmt.Sprintf(`{"iss":%q,"aud":"authenticated","sub":%q,"role":"authenticated","exp":%d,"iat":%d,`+
			`"session_id":"00000000-0000-4000-8000-000000000001","aal":"aal1","phone":"15555550101","email":"",`+
			`"app_metadata":{"provider":"phone","providers":["phone"]},"user_metadata":{},"is_anonymous":false%s}`,
			iss, sub, now+3600, now-60, extra)
	}
	// bare is a payload with only the members given (plus exp unless given).
	bare := func(members string) string { return "{" + members + "}" }
	es := func(payload string) string { return s.sign(t, "ES256", esH, payload) }
	esHdr := func(header string) string { return s.sign(t, "ES256", header, body("")) }
	claims := fmt.Sprintf(`"iss":%q,"sub":%q,"role":"authenticated"`, iss, sub)
	exp := fmt.Sprintf(`"exp":%d`, now+3600)

	good := es(body(""))
	h, p, sig := strings.Split(good, ".")[0], strings.Split(good, ".")[1], strings.Split(good, ".")[2]
	// An ES256 signature is 64 bytes: 86 base64url characters whose last one carries 2 padding bits. Setting them
	// changes the text but not the bytes a lenient decoder returns.
	last := strings.IndexByte(base64URLAlphabet, sig[len(sig)-1])
	noncanonical := h + "." + p + "." + sig[:len(sig)-1] + string(base64URLAlphabet[last^1])

	cases := []edgeCase{
		// Baselines.
		{name: "good ES256", token: good, pg: pgAccepts},
		{name: "good HS256", token: s.sign(t, "HS256", hsH, body("")), pg: pgAccepts},
		{name: "HS256 with the EC key's kid", token: s.sign(t, "HS256", `{"alg":"HS256","kid":"`+s.kid+`"}`, body("")), pg: pgAccepts},

		// iat: PostgREST refuses iat > now + 30 s (JWTIssuedAtFuture) and a non-numeric iat.
		{name: "iat a year ahead", token: es(bare(claims + `,"aud":"authenticated",` + exp + fmt.Sprintf(`,"iat":%d`, now+365*86400))), pg: pgRefuses, refuse: true},
		{name: "iat 35 s ahead", token: es(bare(claims + `,"aud":"authenticated",` + exp + fmt.Sprintf(`,"iat":%d`, now+35))), pg: pgRefuses, refuse: true},
		{name: "iat 32 s ahead", token: es(bare(claims + `,"aud":"authenticated",` + exp + fmt.Sprintf(`,"iat":%d`, now+32))), pg: pgRefuses, refuse: true},
		{name: "iat 28 s ahead", token: es(bare(claims + `,"aud":"authenticated",` + exp + fmt.Sprintf(`,"iat":%d`, now+28))), pg: pgAccepts},
		{name: "iat 20 s ahead", token: es(bare(claims + `,"aud":"authenticated",` + exp + fmt.Sprintf(`,"iat":%d`, now+20))), pg: pgAccepts},
		{name: "iat 1e300", token: es(bare(claims + `,"aud":"authenticated",` + exp + `,"iat":1e300`)), pg: pgRefuses, refuse: true},
		{name: "iat a string", token: es(bare(claims + `,"aud":"authenticated",` + exp + `,"iat":"1"`)), pg: pgRefuses, refuse: true},
		{name: "iat true", token: es(bare(claims + `,"aud":"authenticated",` + exp + `,"iat":true`)), pg: pgRefuses, refuse: true},
		{name: "iat null", token: es(bare(claims + `,"aud":"authenticated",` + exp + `,"iat":null`)), pg: pgAccepts},
		{name: "iat fractional", token: es(bare(claims + `,"aud":"authenticated",` + exp + fmt.Sprintf(`,"iat":%d.5`, now))), pg: pgAccepts},
		{name: "iat far past", token: es(bare(claims + `,"aud":"authenticated",` + exp + `,"iat":-1e300`)), pg: pgAccepts},

		// crit: PostgREST refuses every crit, even empty or null; RFC 7515 §4.1.11.
		{name: "crit [exp]", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","crit":["exp"],"exp":1}`), pg: pgRefuses, refuse: true},
		{name: "crit unknown extension", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","crit":["x-ext"],"x-ext":1}`), pg: pgRefuses, refuse: true},
		{name: "crit names an absent parameter", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","crit":["foo"]}`), pg: pgRefuses, refuse: true},
		{name: "crit [b64]", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","crit":["b64"],"b64":true}`), pg: pgRefuses, refuse: true},
		{name: "crit empty", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","crit":[]}`), pg: pgRefuses, refuse: true},
		{name: "crit null", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","crit":null}`), pg: pgRefuses, refuse: true},

		// Other header parameters.
		{name: "typ a number", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","typ":5}`), pg: pgRefuses, refuse: true},
		{name: "cty a number", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","cty":5}`), pg: pgRefuses, refuse: true},
		{name: "jku not a URI", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","jku":"a:b c"}`), pg: pgRefuses, refuse: true},
		{name: "jwk malformed", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","jwk":{"x":1}}`), pg: pgRefuses, refuse: true},
		{name: "x5c malformed", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","x5c":["zz"]}`), pg: pgRefuses, refuse: true},
		{name: "header invalid UTF-8", token: esHdr("{\"alg\":\"ES256\",\"kid\":\"" + s.kid + "\",\"x\":\"\xff\"}"), pg: pgRefuses, refuse: true},
		{name: "jku well-formed", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","jku":"https://evil.example/jwks"}`), pg: pgAccepts, refuse: true,
			stricter: "a header that names key material (jku, jwk, x5u, x5c, x5t) or changes the encoding (b64, zip) is not Supabase Auth's"},
		{name: "zip", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","zip":"DEF"}`), pg: pgAccepts, refuse: true,
			stricter: "zip is a JWE parameter; Supabase Auth never sends it"},
		{name: "ES256 without kid", token: esHdr(`{"alg":"ES256","typ":"JWT"}`), pg: pgAccepts, refuse: true,
			stricter: "asymmetric tokens must name their key (the key is chosen by kid, never by trying every key)"},
		{name: "ES256 with an unknown kid", token: esHdr(`{"alg":"ES256","kid":"not-a-published-kid","typ":"JWT"}`), pg: pgAccepts, refuse: true,
			stricter: "the kid must be a published key's (PostgREST tries every key it has)"},
		{name: "private header parameter", token: esHdr(`{"alg":"ES256","kid":"` + s.kid + `","x-foo":5}`), pg: pgAccepts},
		{name: "duplicate alg, ES256 first", token: esHdr(`{"alg":"ES256","alg":"HS256","kid":"` + s.kid + `"}`), pg: pgAccepts, refuse: true,
			stricter: "duplicate header member: PostgREST reads the first alg, Go's JSON the last"},
		{name: "duplicate alg, HS256 first", token: esHdr(`{"alg":"HS256","alg":"ES256","kid":"` + s.kid + `"}`), pg: pgRefuses, refuse: true},
		{name: "duplicate kid", token: esHdr(`{"alg":"ES256","kid":"other","kid":"` + s.kid + `"}`), pg: pgAccepts, refuse: true,
			stricter: "duplicate header member"},

		// Duplicate payload members: PostgREST keeps the first, encoding/json the last.
		{name: "sub twice", token: es(body(`,"sub":"` + newUUID() + `"`)), pg: pgAccepts, refuse: true,
			stricter: "duplicate claim: PostgREST and the database would see the first sub, we the last"},
		{name: "role twice, anon last", token: es(body(`,"role":"anon"`)), pg: pgAccepts, refuse: true, stricter: "duplicate claim"},
		{name: "exp twice, expired last", token: es(body(`,"exp":5`)), pg: pgAccepts, refuse: true, stricter: "duplicate claim"},
		{name: "sub twice, escaped name", token: es(body(`,"s\u0075b":"` + newUUID() + `"`)), pg: pgAccepts, refuse: true,
			stricter: "duplicate claim (names compared unescaped)"},
		{name: "nested duplicate", token: es(body(`,"x":{"provider":"a","provider":"b"}`)), pg: pgAccepts, refuse: true,
			stricter: "duplicate member at any depth: app_metadata and amr reach the database"},
		{name: "duplicate in an array's object", token: es(body(`,"y":[{"m":"otp","m":"x"}]`)), pg: pgAccepts, refuse: true,
			stricter: "duplicate member at any depth"},

		// JSON text: PostgREST refuses invalid UTF-8 and unpaired surrogates; encoding/json substitutes U+FFFD.
		{name: "invalid UTF-8", token: es(body(",\"x\":\"\xff\xfe\"")), pg: pgRefuses, refuse: true},
		{name: "overlong UTF-8", token: es(body(",\"x\":\"\xc0\xaf\"")), pg: pgRefuses, refuse: true},
		{name: "UTF-8 encoded surrogate", token: es(body(",\"x\":\"\xed\xa0\x80\"")), pg: pgRefuses, refuse: true},
		{name: "lone high surrogate escape", token: es(body(`,"x":"\ud800"`)), pg: pgRefuses, refuse: true},
		{name: "lone low surrogate escape", token: es(body(`,"x":"\udc00"`)), pg: pgRefuses, refuse: true},
		{name: "high surrogate then text", token: es(body(`,"x":"\ud83dabc"`)), pg: pgRefuses, refuse: true},
		{name: "surrogate pair", token: es(body(`,"x":"\ud83d\ude00"`)), pg: pgAccepts},
		{name: "raw control character", token: es(body(",\"x\":\"a\x01b\"")), pg: pgRefuses, refuse: true},
		{name: "escaped NUL", token: es(body(`,"x":"\u0000"`)), pg: pgAccepts, refuse: true,
			stricter: "PostgreSQL's jsonb cannot hold \\u0000: auth.jwt() fails on such claims"},
		{name: "U+FFFF and DEL", token: es(body(",\"x\":\"\xef\xbf\xbf\x7f\"")), pg: pgAccepts},
		{name: "escaped slash", token: es(body(`,"x":"\/"`)), pg: pgAccepts},
		{name: "leading and trailing whitespace", token: es(" \t\r\n" + body("") + "\n "), pg: pgAccepts},
		{name: "vertical tab before the object", token: es("\v" + body("")), pg: pgRefuses, refuse: true},
		{name: "data after the object", token: es(body("") + "x"), pg: pgRefuses, refuse: true},
		{name: "BOM", token: es("\xef\xbb\xbf" + body("")), pg: pgRefuses, refuse: true},
		{name: "number with a leading zero", token: es(body(`,"x":01`)), pg: pgRefuses, refuse: true},
		{name: "number 1.", token: es(body(`,"x":1.`)), pg: pgRefuses, refuse: true},
		{name: "True", token: es(body(`,"x":True`)), pg: pgRefuses, refuse: true},
		{name: "deep nesting", token: es(body(`,"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100))), pg: pgAccepts, refuse: true,
			stricter: "nesting beyond 32 levels (Supabase's deepest claim has 2)"},

		// Registered claims' types and StringOrURI.
		{name: "jti a number", token: es(body(`,"jti":5`)), pg: pgRefuses, refuse: true},
		{name: "jti null", token: es(body(`,"jti":null`)), pg: pgAccepts},
		{name: "aud member with a colon, not a URI", token: es(bare(claims + `,"aud":["authenticated","a:b c"],` + exp)), pg: pgRefuses, refuse: true},
		{name: "aud member a number", token: es(bare(claims + `,"aud":["authenticated",5],` + exp)), pg: pgRefuses, refuse: true},
		{name: "aud array", token: es(bare(claims + `,"aud":["urn:x:y","authenticated"],` + exp)), pg: pgAccepts},
		{name: "aud empty array", token: es(bare(claims + `,"aud":[],` + exp)), pg: pgRefuses, refuse: true},
		{name: "aud missing", token: es(bare(claims + "," + exp)), pg: pgAccepts, refuse: true, stricter: "auth.md §2.3: aud must contain authenticated"},
		{name: "aud null", token: es(bare(claims + `,"aud":null,` + exp)), pg: pgAccepts, refuse: true, stricter: "auth.md §2.3"},
		{name: "sub with a colon, not a URI", token: es(bare(`"sub":"a:b c","role":"authenticated","aud":"authenticated",` + exp)), pg: pgRefuses, refuse: true},
		{name: "sub a number", token: es(bare(`"sub":5,"role":"authenticated","aud":"authenticated",` + exp)), pg: pgRefuses, refuse: true},

		// exp and nbf: PostgREST allows 30 s of skew, we 10 s; both refuse wrong types.
		{name: "exp a string", token: es(bare(claims + `,"aud":"authenticated",` + fmt.Sprintf(`"exp":"%d"`, now+3600))), pg: pgRefuses, refuse: true},
		{name: "exp true", token: es(bare(claims + `,"aud":"authenticated","exp":true`)), pg: pgRefuses, refuse: true},
		{name: "exp 40 s ago", token: es(bare(claims + `,"aud":"authenticated",` + fmt.Sprintf(`"exp":%d`, now-40))), pg: pgRefuses, refuse: true},
		{name: "exp 20 s ago", token: es(bare(claims + `,"aud":"authenticated",` + fmt.Sprintf(`"exp":%d`, now-20))), pg: pgAccepts, refuse: true,
			stricter: "exp leeway 10 s (auth.md §2.3: small, ≤ 30 s); the cookie session is refreshed"},
		{name: "exp missing", token: es(bare(claims + `,"aud":"authenticated"`)), pg: pgAccepts, refuse: true, stricter: "auth.md §2.3: exp required"},
		{name: "exp null", token: es(bare(claims + `,"aud":"authenticated","exp":null`)), pg: pgAccepts, refuse: true, stricter: "exp required"},
		{name: "exp fractional", token: es(bare(claims + `,"aud":"authenticated",` + fmt.Sprintf(`"exp":%d.75`, now+3600))), pg: pgAccepts},
		{name: "exp 1e300", token: es(bare(claims + `,"aud":"authenticated","exp":1e300`)), pg: pgAccepts, refuse: true,
			stricter: "an exp beyond year 292277026596 does not fit a time.Time"},
		{name: "nbf 40 s ahead", token: es(body(fmt.Sprintf(`,"nbf":%d`, now+40))), pg: pgRefuses, refuse: true},
		{name: "nbf 20 s ahead", token: es(body(fmt.Sprintf(`,"nbf":%d`, now+20))), pg: pgAccepts, refuse: true, stricter: "nbf leeway 10 s"},
		{name: "nbf a string", token: es(body(`,"nbf":"1"`)), pg: pgRefuses, refuse: true},

		// role: PostgREST switches to the role named (the anon role when absent); we want a user.
		{name: "role unknown", token: es(bare(`"sub":"` + sub + `","aud":"authenticated","role":"nosuchrole",` + exp)), pg: pgErrors, refuse: true},
		{name: "role a number", token: es(bare(`"sub":"` + sub + `","aud":"authenticated","role":5,` + exp)), pg: pgErrors, refuse: true},

		// Form.
		{name: "signature non-canonical base64url", token: noncanonical, pg: pgRefuses, refuse: true},
		{name: "signature padded", token: good + "==", pg: pgRefuses, refuse: true},
		{name: "payload padded", token: h + "." + p + "=." + sig, pg: pgRefuses, refuse: true},
		{name: "standard base64 alphabet", token: h + "." + p + "." + sig[:len(sig)-2] + "+/", pg: pgRefuses, refuse: true},
		{name: "four segments", token: good + ".x", pg: pgRefuses, refuse: true},
		{name: "trailing dot", token: good + ".", pg: pgRefuses, refuse: true},

		// The HMAC path has the same checks.
		{name: "HS256 iat a year ahead", token: s.sign(t, "HS256", hsH, bare(claims+`,"aud":"authenticated",`+exp+fmt.Sprintf(`,"iat":%d`, now+365*86400))), pg: pgRefuses, refuse: true},
		{name: "HS256 crit", token: s.sign(t, "HS256", `{"alg":"HS256","crit":["x"],"x":1}`, body("")), pg: pgRefuses, refuse: true},
		{name: "HS256 sub twice", token: s.sign(t, "HS256", hsH, body(`,"sub":"`+newUUID()+`"`)), pg: pgAccepts, refuse: true, stricter: "duplicate claim"},
		{name: "role missing", token: es(bare(`"sub":"` + sub + `","aud":"authenticated",` + exp)), pg: pgErrors, refuse: true},
	}
	// StringOrURI: an aud member with a colon must be an absolute URI (RFC 3986).
	for _, u := range []struct {
		s  string
		pg pgOutcome
	}{
		{"urn:x:y", pgAccepts}, {"a:", pgAccepts}, {"http://[::1]:5/x", pgAccepts}, {"http://host:/p", pgAccepts},
		{"http://user:pw@host:80/p?q=1&r=/?#frag/?", pgAccepts}, {"http://", pgAccepts}, {"http://[v1.x:y]/", pgRefuses},
		{"file:///etc", pgAccepts}, {"a:b/c:d@e", pgAccepts}, {"a b", pgAccepts},
		{"a:b c", pgRefuses}, {":a", pgRefuses}, {"1a:b", pgRefuses}, {"http://a:b:c/", pgRefuses}, {"a:%zz", pgRefuses},
		{"a:é", pgRefuses}, {"http://[zz]/x", pgRefuses}, {"http://[::1%eth0]/", pgRefuses}, {"http://a@b@c/", pgRefuses},
		{"http://h/p#a#b", pgRefuses}, {"http://h/[x]", pgRefuses}, {"http://[1.2.3.4]/", pgRefuses},
	} {
		aud, _ := json.Marshal([]string{"authenticated", u.s})
		cases = append(cases, edgeCase{name: "aud member " + u.s, token: es(bare(claims + `,"aud":` + string(aud) + "," + exp)),
			pg: u.pg, refuse: u.pg != pgAccepts})
	}
	return cases
}

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestVerifierEdgeCases: our verifier (our keys, HS256 secret, issuer configured) on the edge-case table.
func TestVerifierEdgeCases(t *testing.T) {
	t.Parallel()
	ec := newECSigner(t, "edge-"+newUUID()[:8])
	v := newTestVerifier(t, newKeyServer(t, ec.jwk()))
	for _, tc := range edgeCases(t, edgeSigner{ec: ec.key, kid: ec.kid, secret: []byte(devkeys.JWTSecret)}, testIssuer) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tc.token)
			if tc.refuse && err == nil {
				t.Fatal("accepted, want refused")
			}
			if !tc.refuse && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.pg == pgAccepts && tc.refuse && tc.stricter == "" {
				t.Error("case refuses what PostgREST accepts without saying why (stricter)")
			}
			if (tc.pg != pgAccepts) && !tc.refuse {
				t.Error("case accepts what PostgREST refuses")
			}
		})
	}
}

// TestVerifyAnyEdgeCases: the service-role path (any role, aud and iss) refuses every token PostgREST refuses for
// its form or claims too. Excluded: a present aud without "authenticated", which only PostgREST's jwt-aud setting
// refuses; VerifyAny documents that it checks no audience (API-key JWTs carry none).
func TestVerifyAnyEdgeCases(t *testing.T) {
	t.Parallel()
	ec := newECSigner(t, "edge-any-"+newUUID()[:8])
	v := newTestVerifier(t, newKeyServer(t, ec.jwk()))
	for _, tc := range edgeCases(t, edgeSigner{ec: ec.key, kid: ec.kid, secret: []byte(devkeys.JWTSecret)}, testIssuer) {
		if tc.pg != pgRefuses || tc.name == "aud empty array" {
			continue
		}
		if _, err := v.VerifyAny(t.Context(), tc.token); err == nil {
			t.Errorf("%s: VerifyAny accepted it", tc.name)
		}
	}
}
