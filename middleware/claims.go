package middleware

import (
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
// JSON (numbers are float64) for the rare route that needs more.
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
