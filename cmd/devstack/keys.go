package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// printKeys prints the development credentials as NAME=value lines for scripts/stack.sh:
//   - SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY, SUPABASE_JWT_SECRET: the CLI-shaped API keys and legacy secret;
//   - GOTRUE_JWT_KEYS: the ES256 private key as the JSON array of JWKs Supabase Auth signs with;
//   - JWKS: the public key set Auth publishes, which Storage reads as JWT_JWKS;
//   - POSTGREST_JWKS: the public key plus the HS256 secret, PostgREST's jwt-secret (it accepts both kinds).
func printKeys(w io.Writer) error {
	signing, err := json.Marshal([]devkeys.PrivateJWK{devkeys.SigningJWK()})
	if err != nil {
		return err
	}
	lines := []string{
		"SUPABASE_ANON_KEY=" + devkeys.AnonKey(),
		"SUPABASE_SERVICE_ROLE_KEY=" + devkeys.ServiceRoleKey(),
		"SUPABASE_JWT_SECRET=" + devkeys.JWTSecret,
		"GOTRUE_JWT_KEYS=" + string(signing),
		"JWKS=" + string(devkeys.PublicJWKS()),
		"POSTGREST_JWKS=" + string(devkeys.PostgRESTJWKS()),
	}
	_, err = fmt.Fprintln(w, strings.Join(lines, "\n"))
	return err
}

// testOTPs is Supabase Auth's GOTRUE_SMS_TEST_OTP: every demo phone and every number of the test block accept the
// fixed code, and no SMS is ever sent for them.
func testOTPs() string {
	var b strings.Builder
	for i, p := range devkeys.TestOTPPhones() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p + ":" + devkeys.TestOTP)
	}
	return b.String()
}
