// Package authsession is the one model of a Supabase Auth session: what Auth's /verify and /token return, what the
// @supabase/ssr cookie stores and what the browser client reads back (auth.md §4.2). The middleware reads and
// refreshes cookie sessions with it, supa returns it from Auth calls and api writes it into cookies and answers, so
// there is one parser with one set of rules for all three.
package authsession

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Session is a Supabase Auth session as stored in the @supabase/ssr cookie and as returned by the token endpoints
// (auth.md §4.2). Raw is the full JSON exactly as received, so that writing it back keeps fields this type does not
// model (user, provider tokens, weak_password, …).
type Session struct {
	AccessToken  string          `json:"access_token"`
	RefreshToken string          `json:"refresh_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    int64           `json:"expires_in"`
	ExpiresAt    int64           `json:"expires_at"`
	User         json.RawMessage `json:"user,omitempty"`
	Raw          json.RawMessage `json:"-"`
}

// ErrNotSession: JSON that is not a session object (not an object, or no string access_token).
var ErrNotSession = errors.New("not a session")

// ParseSession decodes a session JSON object. It requires a non-empty string access_token; numeric fields may be
// integers or floats (JavaScript writes either); a field of the wrong type makes the whole thing malformed.
func Parse(raw []byte) (*Session, error) {
	var aux struct {
		AccessToken  *string         `json:"access_token"`
		RefreshToken *string         `json:"refresh_token"`
		TokenType    *string         `json:"token_type"`
		ExpiresIn    json.Number     `json:"expires_in"`
		ExpiresAt    json.Number     `json:"expires_at"`
		User         json.RawMessage `json:"user"`
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, ErrNotSession
	}
	if err := json.Unmarshal(trimmed, &aux); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotSession, err)
	}
	if aux.AccessToken == nil || *aux.AccessToken == "" {
		return nil, fmt.Errorf("%w: no access_token", ErrNotSession)
	}
	s := &Session{AccessToken: *aux.AccessToken, User: aux.User, Raw: append(json.RawMessage(nil), trimmed...)}
	if aux.RefreshToken != nil {
		s.RefreshToken = *aux.RefreshToken
	}
	if aux.TokenType != nil {
		s.TokenType = *aux.TokenType
	}
	var err error
	if s.ExpiresIn, err = numberToInt(aux.ExpiresIn); err != nil {
		return nil, fmt.Errorf("%w: expires_in: %v", ErrNotSession, err)
	}
	if s.ExpiresAt, err = numberToInt(aux.ExpiresAt); err != nil {
		return nil, fmt.Errorf("%w: expires_at: %v", ErrNotSession, err)
	}
	return s, nil
}

func numberToInt(n json.Number) (int64, error) {
	if n == "" {
		return 0, nil
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || f > math.MaxInt64 || f < math.MinInt64 {
		return 0, errors.New("not a number")
	}
	return int64(f), nil
}

// WithExpiresAt returns the session with expires_at filled in from expires_in when Supabase Auth omitted it: the
// browser client treats a stored session without expires_at as invalid (auth.md §4.2). Raw is updated to match.
// Call it before WriteSessionCookie on any session obtained from Auth (the refresh path already does).
func (s *Session) WithExpiresAt(now time.Time) (*Session, error) {
	if s.ExpiresAt != 0 || s.ExpiresIn <= 0 {
		return s, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(s.Raw, &m); err != nil {
		return nil, err
	}
	cp := *s
	cp.ExpiresAt = now.Unix() + s.ExpiresIn
	m["expires_at"] = json.RawMessage(strconv.FormatInt(cp.ExpiresAt, 10))
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	cp.Raw = raw
	return &cp, nil
}

// ErrRejected marks a refresh Supabase Auth refused (a 4xx: the refresh token is revoked, reused or unknown): the
// session is over, so its cookie is deleted and the caller gets 401. Every other refresh failure is an outage.
var ErrRejected = errors.New("refresh token rejected")

// UserID returns the auth uid of the session's user ("" when the session carries no user).
func (s *Session) UserID() string {
	var u struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(s.User, &u)
	return u.ID
}
