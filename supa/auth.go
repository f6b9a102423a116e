package supa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/qryptchat/suparelay/internal/authsession"
)

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
func (c *Client) VerifyOTP(ctx context.Context, phone, code string) (*authsession.Session, error) {
	var raw json.RawMessage
	if err := c.authCall(ctx, http.MethodPost, "verify", "", map[string]any{"type": "sms", "phone": phone, "token": code}, &raw); err != nil {
		return nil, err
	}
	return parseSession(raw)
}

// RefreshSession exchanges a refresh token for a new session (the refresh token is rotated by Auth). It is the
// middleware's Refresher: an Auth 4xx (the token is revoked, reused or unknown) wraps authsession.ErrRejected, so the
// cookie is cleared; anything else is an outage that leaves the cookie alone.
func (c *Client) RefreshSession(ctx context.Context, refreshToken string) (*authsession.Session, error) {
	var raw json.RawMessage
	if err := c.authCall(ctx, http.MethodPost, "token?grant_type=refresh_token", "", map[string]any{"refresh_token": refreshToken}, &raw); err != nil {
		if status := AuthStatus(err); status >= 400 && status < 500 {
			return nil, fmt.Errorf("%w: %w", authsession.ErrRejected, err)
		}
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

// parseSession decodes Auth's session and fills expires_at when Auth omitted it, as the browser client does.
func parseSession(raw json.RawMessage) (*authsession.Session, error) {
	s, err := authsession.Parse(raw)
	if err == nil {
		s, err = s.WithExpiresAt(time.Now())
	}
	if err != nil {
		return nil, &Error{Op: "auth session", Status: http.StatusBadGateway, Message: "Auth returned no session"}
	}
	return s, nil
}

// SignInProfile reads the users row of authUID for verify-sms, under the token of the caller's own fresh session;
// nil when there is none. Should one auth uid have several rows, the first PostgREST returns is used.
func (r Rest) SignInProfile(ctx context.Context, authUID string) (*ProfileRow, error) {
	var rows []ProfileRow
	err := r.Select(ctx, "users",
		Q("select", "id,username,display_name,avatar_url,created_at", "auth_user_id", "eq."+authUID, "limit", "2"), &rows)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

// AuthKind is the class of a failed call to Supabase Auth, by how far it got: the routes answer an Auth that is
// down differently from an Auth that refused the request (a 401 for an outage would send the browser to the login
// page).
type AuthKind int

const (
	AuthUnreachable AuthKind = iota // no answer from Auth arrived (refused, reset, timed out)
	AuthServerError                 // Auth answered 5xx: it is broken, the request may be fine
	AuthRateLimited                 // Auth answered 429
	AuthRefused                     // Auth answered another 4xx: it refused this request
	AuthOther                       // any other answer that is not a success (1xx, 3xx): not expected
)

// AuthErrorKind classifies err, a failure of SendOTP, VerifyOTP, RefreshSession or GetUser. An error that did not
// come from a call of this package (which those methods never return) is AuthUnreachable: nothing was heard from
// Auth.
func AuthErrorKind(err error) AuthKind {
	switch s := AuthStatus(err); {
	case s == 0:
		return AuthUnreachable
	case s >= 500:
		return AuthServerError
	case s == http.StatusTooManyRequests:
		return AuthRateLimited
	case s >= 400:
		return AuthRefused
	}
	return AuthOther
}

// AuthStatus is the HTTP status of Auth's answer to a failed call; 0 when no answer arrived.
func AuthStatus(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// AuthMessage is the message text of Auth's answer to a failed call ("" when it had none or none arrived).
func AuthMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}

// authText is the text the classifiers below read: Auth's message, or the error's own text when it did not come
// from this package.
func authText(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// OTPRefusal is why Auth refused a one-time code, read from its message text: the original told these refusals
// apart by text alone, and the contract keeps its answers (routes.md §3.10).
type OTPRefusal int

const (
	OTPRefusedOther    OTPRefusal = iota // none of the texts below
	OTPExpired                           // the text has "expired" (Auth's usual "Token has expired or is invalid" too)
	OTPInvalid                           // the text has "invalid"
	OTPTooManyAttempts                   // the text has "Too many requests"
	OTPRateLimited                       // the text has "rate limit"
)

// OTPRefusalOf classifies a failed VerifyOTP by its text; the first match in the order of the constants wins.
func OTPRefusalOf(err error) OTPRefusal {
	msg := authText(err)
	switch {
	case strings.Contains(msg, "expired"):
		return OTPExpired
	case strings.Contains(msg, "invalid"):
		return OTPInvalid
	case strings.Contains(msg, "Too many requests"):
		return OTPTooManyAttempts
	case strings.Contains(msg, "rate limit"):
		return OTPRateLimited
	}
	return OTPRefusedOther
}

// SMSRefusal is why the SMS provider behind Auth refused to send a code, read from the text Auth passes on
// (routes.md §3.6).
type SMSRefusal int

const (
	SMSRefusedOther        SMSRefusal = iota // none of the reasons below
	SMSProviderCredentials                   // the provider refused Auth's credentials: "Authenticate" or Twilio 20003
	SMSNumberNotVerified                     // a trial account may not text this number: Twilio 21610 or "not verified"
	SMSInvalidNumber                         // the provider calls the number invalid: Twilio 21211 or "Invalid phone number"
)

// twilioCode finds the provider's error code in Auth's text: its first five-digit number.
var twilioCode = regexp.MustCompile(`\b\d{5}\b`)

// SMSRefusalOf classifies a failed SendOTP by its text; the first match in the order of the constants wins.
func SMSRefusalOf(err error) SMSRefusal {
	msg := authText(err)
	code := twilioCode.FindString(msg)
	switch {
	case strings.Contains(msg, "Authenticate") || code == "20003":
		return SMSProviderCredentials
	case code == "21610" || strings.Contains(msg, "not verified"):
		return SMSNumberNotVerified
	case code == "21211" || strings.Contains(msg, "Invalid phone number"):
		return SMSInvalidNumber
	}
	return SMSRefusedOther
}
