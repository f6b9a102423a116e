// Package notify sends messages through third parties we cannot run ourselves: SMS through Twilio or Telnyx and
// e-mail through Mailgun, each behind a small interface ([SMSSender], [Mailer]) so that handlers can be given a
// log-only implementation in development ([LogSMS], [LogMailer]) and a real one in production.
//
// It also verifies Telnyx webhook signatures ([VerifyTelnyxSignature]), because that check belongs with the
// provider's other wire details rather than with the route that receives the webhook.
//
// Every sender talks plain HTTP through an *http.Client the caller may supply, and its base URL is configurable so
// tests can point it at a local fake that asserts the exact request. Error texts that reach the browser are the
// contract's (routes.md §9.3); provider messages are wrapped in [*ProviderError] so callers can both show them
// (the original did) and inspect the status and code.
//
// The package imports nothing else of suparelay.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultTimeout bounds one provider call when the caller's context has no earlier deadline and no HTTPClient is
// given. Providers answer in well under a second; a hung provider must not hold a request goroutine for long.
const DefaultTimeout = 15 * time.Second

// maxProviderBody caps how much of a provider's answer is read; their answers are small JSON documents.
const maxProviderBody = 1 << 20

// ProviderError is a failed call to a provider. Its Error text is "<Provider> <Action> failed: <Message>", the form
// the original surfaced to callers (e.g. "Twilio SMS failed: The 'To' number is not a valid phone number.").
// Message is the provider's own message, or a neutral phrase when the call never got an answer (library error
// text is not shown to callers; it is kept in Err).
type ProviderError struct {
	Provider string // "Twilio", "Telnyx", "Mailgun"
	Action   string // "SMS", "email"
	Status   int    // HTTP status from the provider; 0 when the call failed before an answer
	Code     string // provider error code when given (Twilio: numeric code; Telnyx: code string)
	Message  string
	Err      error // underlying transport error, if any
}

func (e *ProviderError) Error() string {
	return e.Provider + " " + e.Action + " failed: " + e.Message
}

func (e *ProviderError) Unwrap() error { return e.Err }

// ErrNotConfigured is wrapped by every configuration error, so callers can tell "this deployment has no SMS
// provider" (a 500 with the error text, per the contract) from a provider failure.
var ErrNotConfigured = errors.New("notify: provider not configured")

// configError carries an exact contract text while matching ErrNotConfigured.
type configError struct{ msg string }

func (e *configError) Error() string        { return e.msg }
func (e *configError) Is(target error) bool { return target == ErrNotConfigured }

func httpClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: DefaultTimeout}
}

func baseURL(configured, def string) string {
	if configured == "" {
		configured = def
	}
	return strings.TrimRight(configured, "/")
}

// doJSON sends req and decodes a 2xx JSON answer into ok, or a non-2xx JSON answer into failure; it returns the
// status and any transport or decoding error. The body is always drained and closed.
func doJSON(ctx context.Context, client *http.Client, req *http.Request, ok, failure any) (int, error) {
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderBody))
	if err != nil {
		return resp.StatusCode, err
	}
	target := ok
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		target = failure
	}
	if len(data) > 0 && target != nil {
		// A non-JSON error page still yields the status; only a 2xx that is not JSON is an error.
		if err := json.Unmarshal(data, target); err != nil && target == ok {
			return resp.StatusCode, fmt.Errorf("decode provider answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// transportFailure is the neutral message shown when a provider could not be reached.
func transportFailure(ctx context.Context) string {
	if ctx.Err() != nil {
		return "request canceled or timed out"
	}
	return "provider unreachable"
}
