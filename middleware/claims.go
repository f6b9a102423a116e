package middleware

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Sentinel errors returned (wrapped) by [Verifier.Verify] and [Verifier.VerifyAny]. Their Error text may carry the
// library's reason for the log; it must never be sent to a client (auth.md §10).
var (
	// ErrTokenExpired: the signature is valid but exp (plus leeway) has passed. Only this error makes a cookie
	// session eligible for refresh.
	ErrTokenExpired = errors.New("token expired")
	// ErrTokenInvalid: anything else wrong with the token (malformed, bad signature, algorithm, unknown key, nbf,
	// aud, iss, sub, oversize).
	ErrTokenInvalid = errors.New("token invalid")
	// ErrNotUser: a valid token whose role is not "authenticated" (an anon or service-role API key) presented where a
	// user is required.
	ErrNotUser = errors.New("token is not a user session")
	// ErrKeysUnavailable is what Ready reports while no JWKS key has been loaded yet.
	ErrKeysUnavailable = errors.New("JWKS keys not loaded yet")
)

// Claims is the verified content of a Supabase Auth access token (auth.md §2.2). Raw holds every claim as decoded
// JSON (numbers are float64) for the rare route that needs more, on a fresh verification only: claims Verify serves
// from its token cache have Raw nil. The decoded map is most of what a cached token costs (about 2 KiB for a Supabase
// Auth phone session, every signed-in user holding one while its streams are open; more with a large
// user_metadata), and no route reads it.
type Claims struct {
	Subject     string // auth uid (a UUID for user tokens; empty for API keys)
	Role        string // "authenticated", "anon", "service_role"
	SessionID   string
	Phone       string // E.164 digits WITHOUT '+'
	Email       string
	Issuer      string
	Audience    []string
	ExpiresAt   time.Time
	IsAnonymous bool
	Raw         map[string]any
}

// claimsFromMap copies the claims suparelay uses out of a verified token's map.
func claimsFromMap(m jwt.MapClaims) (*Claims, error) {
	c := &Claims{Raw: map[string]any(m)}
	var err error
	if c.Subject, err = optString(m, "sub"); err != nil {
		return nil, err
	}
	if c.Role, err = optString(m, "role"); err != nil {
		return nil, err
	}
	if c.SessionID, err = optString(m, "session_id"); err != nil {
		return nil, err
	}
	if c.Phone, err = optString(m, "phone"); err != nil {
		return nil, err
	}
	if c.Email, err = optString(m, "email"); err != nil {
		return nil, err
	}
	if c.Issuer, err = optString(m, "iss"); err != nil {
		return nil, err
	}
	aud, err := m.GetAudience()
	if err != nil {
		return nil, err
	}
	c.Audience = []string(aud)
	exp, err := m.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, fmt.Errorf("exp: %v", err)
	}
	c.ExpiresAt = exp.Time
	switch v := m["is_anonymous"].(type) {
	case nil:
	case bool:
		c.IsAnonymous = v
	default:
		return nil, errors.New("is_anonymous is not a boolean")
	}
	return c, nil
}

// IssuedAtSkew is how far in the future a token's iat may be. PostgREST 12 refuses iat > now + 30 s
// (JWTIssuedAtFuture: its JWT library's allowedSkew, measured on the real PostgREST by TestVerifierMatchesPostgREST),
// so we refuse exactly beyond that, no earlier. Not the 10 s exp/nbf leeway: a too-strict exp only ends a token's
// life a little early and the cookie refresh covers it, but refusing a FRESH token because Auth's clock runs ahead
// of ours would have no remedy (a refresh returns another fresh token with the same future iat).
const IssuedAtSkew = 30 * time.Second

var errIssuedInFuture = errors.New("iat is in the future")

// checkRegisteredClaims applies to a verified token's claims the rules that PostgREST 12 applies and the jwt
// parser does not: iat, when present and not null, a number no later than now + IssuedAtSkew; jti a string; iss,
// sub and every aud a StringOrURI (a string with a colon must be an absolute URI). Null counts as absent, as in
// PostgREST. exp and nbf (types, leeway) are left to the parser, which is stricter than PostgREST about both.
func checkRegisteredClaims(m jwt.MapClaims, now time.Time) error {
	switch v := m["iat"].(type) {
	case nil:
	case float64:
		if v > float64(now.Add(IssuedAtSkew).Unix()) {
			return fmt.Errorf("%w (%.0f s ahead)", errIssuedInFuture, v-float64(now.Unix()))
		}
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return errors.New("claim \"iat\" is not a number")
		}
		if f > float64(now.Add(IssuedAtSkew).Unix()) {
			return errIssuedInFuture
		}
	default:
		return errors.New("claim \"iat\" is not a number")
	}
	if _, err := optString(m, "jti"); err != nil {
		return err
	}
	for _, name := range [...]string{"iss", "sub"} {
		v, err := optString(m, name)
		if err != nil {
			return err
		}
		if !isStringOrURI(v) {
			return fmt.Errorf("claim %q has a colon but is not a URI", name)
		}
	}
	switch v := m["aud"].(type) {
	case nil:
	case string:
		if !isStringOrURI(v) {
			return errors.New(`claim "aud" has a colon but is not a URI`)
		}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return errors.New(`claim "aud" has a member that is not a string`)
			}
			if !isStringOrURI(s) {
				return errors.New(`claim "aud" has a member with a colon that is not a URI`)
			}
		}
	default:
		return errors.New(`claim "aud" is neither a string nor an array`)
	}
	return nil
}

// optString returns a string claim, "" when absent, and an error when present with another JSON type (a claim of
// the wrong type is a malformed token, not a missing claim).
func optString(m jwt.MapClaims, name string) (string, error) {
	switch v := m[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("claim %q is not a string", name)
	}
}

// isUUID reports whether s is a canonical 8-4-4-4-12 hexadecimal UUID, the only shape of auth uid Supabase issues.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
