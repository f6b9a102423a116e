package supa

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// AuthSession is a session as Supabase Auth returns it from /verify and /token. Raw keeps the exact JSON, which is
// what goes into the session cookie and what the browser stores.
type AuthSession struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    int64           `json:"expires_in"`
	ExpiresAt    int64           `json:"expires_at"`
	RefreshToken string          `json:"refresh_token"`
	User         json.RawMessage `json:"user"`
	Raw          json.RawMessage `json:"-"`
}

// UserID returns the auth uid of the session's user ("" when absent).
func (s *AuthSession) UserID() string {
	var u struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(s.User, &u)
	return u.ID
}

// authCall posts (or gets) JSON to /auth/v1/<path>. The gateway needs apikey on every Auth path but a few.
func (c *Client) authCall(ctx context.Context, method, path, bearer string, body any, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return &Error{Op: "auth " + path, Err: err}
		}
		rd = bytes.NewReader(b)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, method, c.base+"/auth/v1/"+path, rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, c.base+"/auth/v1/"+path, nil)
	}
	if err != nil {
		return &Error{Op: "auth " + path, Err: err}
	}
	req.Header.Set("apikey", c.anonKey)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return c.send(ctx, req, "auth "+strings.SplitN(path, "?", 2)[0], out)
}

// SendOTP asks Supabase Auth to text a one-time code to phone (E.164 with '+'), creating the auth user if needed.
func (c *Client) SendOTP(ctx context.Context, phone string) error {
	return c.authCall(ctx, http.MethodPost, "otp", "", map[string]any{"phone": phone, "create_user": true, "channel": "sms"}, nil)
}

// VerifyOTP exchanges a phone one-time code for a session.
func (c *Client) VerifyOTP(ctx context.Context, phone, code string) (*AuthSession, error) {
	var raw json.RawMessage
	if err := c.authCall(ctx, http.MethodPost, "verify", "", map[string]any{"type": "sms", "phone": phone, "token": code}, &raw); err != nil {
		return nil, err
	}
	return parseSession(raw)
}

// RefreshSession exchanges a refresh token for a new session (the refresh token is rotated by Auth).
func (c *Client) RefreshSession(ctx context.Context, refreshToken string) (*AuthSession, error) {
	var raw json.RawMessage
	if err := c.authCall(ctx, http.MethodPost, "token?grant_type=refresh_token", "", map[string]any{"refresh_token": refreshToken}, &raw); err != nil {
		return nil, err
	}
	return parseSession(raw)
}

// GetUser returns the Auth user object of the token's session, exactly as Auth sends it. It also fails for tokens
// whose session was logged out, which local verification cannot see.
func (c *Client) GetUser(ctx context.Context, accessToken string) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.authCall(ctx, http.MethodGet, "user", accessToken, nil, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// JWKSURL is where Supabase Auth publishes its public signing keys.
func (c *Client) JWKSURL() string { return c.base + "/auth/v1/.well-known/jwks.json" }

// parseSession decodes a session and fills expires_at when Auth omitted it, as the browser client does.
func parseSession(raw json.RawMessage) (*AuthSession, error) {
	var s AuthSession
	if err := json.Unmarshal(raw, &s); err != nil || s.AccessToken == "" {
		return nil, &Error{Op: "auth session", Status: http.StatusBadGateway, Message: "Auth returned no session"}
	}
	s.Raw = raw
	if s.ExpiresAt == 0 && s.ExpiresIn > 0 {
		var m map[string]any
		if json.Unmarshal(raw, &m) == nil {
			s.ExpiresAt = nowUnix() + s.ExpiresIn
			m["expires_at"] = s.ExpiresAt
			if b, err := json.Marshal(m); err == nil {
				s.Raw = b
			}
		}
	}
	return &s, nil
}
