package supa_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/qryptchat/suparelay/supa"
)

// TestAuthErrorKind: the routes tell an Auth that is down (no answer, 5xx) from one that refused the request, and
// a 429 from other refusals, also through wrapping.
func TestAuthErrorKind(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want supa.AuthKind
	}{
		{&supa.Error{Op: "auth verify", Err: context.DeadlineExceeded}, supa.AuthUnreachable},
		{errors.New("not from supa"), supa.AuthUnreachable},
		{&supa.Error{Status: 500}, supa.AuthServerError},
		{&supa.Error{Status: 502, Message: "Auth returned no session"}, supa.AuthServerError},
		{fmt.Errorf("send: %w", &supa.Error{Status: 429}), supa.AuthRateLimited},
		{&supa.Error{Status: 400}, supa.AuthRefused},
		{&supa.Error{Status: 403}, supa.AuthRefused},
		{&supa.Error{Status: 302}, supa.AuthOther},
	} {
		if got := supa.AuthErrorKind(c.err); got != c.want {
			t.Errorf("AuthErrorKind(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	if s, m := supa.AuthStatus(&supa.Error{Status: 422, Message: "m"}), supa.AuthMessage(&supa.Error{Status: 422, Message: "m"}); s != 422 || m != "m" {
		t.Errorf("AuthStatus, AuthMessage = %d, %q", s, m)
	}
	if s, m := supa.AuthStatus(errors.New("x")), supa.AuthMessage(errors.New("x")); s != 0 || m != "" {
		t.Errorf("of a foreign error: AuthStatus, AuthMessage = %d, %q", s, m)
	}
}

// TestOTPRefusalOf: Auth's texts, first match wins (routes.md §3.10: Auth's usual "Token has expired or is
// invalid" is an expired code).
func TestOTPRefusalOf(t *testing.T) {
	t.Parallel()
	for msg, want := range map[string]supa.OTPRefusal{
		"Token has expired or is invalid":                   supa.OTPExpired,
		"invalid token":                                     supa.OTPInvalid,
		"Too many requests":                                 supa.OTPTooManyAttempts,
		"Email rate limit exceeded":                         supa.OTPRateLimited,
		"Invalid code":                                      supa.OTPRefusedOther, // the match is case-sensitive
		"Auth returned no session":                          supa.OTPRefusedOther,
		"For security purposes, you can only request this.": supa.OTPRefusedOther,
	} {
		if got := supa.OTPRefusalOf(&supa.Error{Status: 400, Message: msg}); got != want {
			t.Errorf("OTPRefusalOf(%q) = %d, want %d", msg, got, want)
		}
	}
	if got := supa.OTPRefusalOf(errors.New("code expired")); got != supa.OTPExpired {
		t.Errorf("a foreign error is read by its own text: got %d", got)
	}
}

// TestSMSRefusalOf: the provider's code is the first five-digit number of Auth's text; texts match too.
func TestSMSRefusalOf(t *testing.T) {
	t.Parallel()
	for msg, want := range map[string]supa.SMSRefusal{
		"Error sending confirmation OTP to provider: Authenticate":                          supa.SMSProviderCredentials,
		"Error sending confirmation OTP to provider: code 20003":                            supa.SMSProviderCredentials,
		"Error sending confirmation OTP to provider: 21610 unsubscribed recipient":          supa.SMSNumberNotVerified,
		"The number +15005550001 is unverified. Trial accounts: the number is not verified": supa.SMSNumberNotVerified,
		"Error 21211: Invalid 'To' Phone Number":                                            supa.SMSInvalidNumber,
		"Invalid phone number format":                                                       supa.SMSInvalidNumber,
		"Error 30007 then 21211":                                                            supa.SMSRefusedOther, // only the first code counts
		"Unable to send":                                                                    supa.SMSRefusedOther,
	} {
		if got := supa.SMSRefusalOf(&supa.Error{Status: 500, Message: msg}); got != want {
			t.Errorf("SMSRefusalOf(%q) = %d, want %d", msg, got, want)
		}
	}
}
