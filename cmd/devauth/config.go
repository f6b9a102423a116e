package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is everything devauth reads from its environment. Tests build one directly.
type Config struct {
	DatabaseURL   string        // stack database; the role must be able to write auth.users and create schema devauth
	PostgRESTURL  string        // proxied at /rest/v1/ (empty: 503)
	Issuer        string        // iss of issued tokens; fixed like the CLI's, so every stack's tokens match testenv's
	PublicURL     string        // where devauth is reached (jwks_uri); default: Issuer without /auth/v1
	JWTExpiry     time.Duration // access-token lifetime
	OTPInterval   time.Duration // minimum time between two OTP sends to one phone (0: unlimited)
	ReuseInterval time.Duration // how long an already-used refresh token may still be presented
	TestOTPs      map[string]string
	AnyOTP        bool   // accept anyOTPCode for every phone
	StrictSession bool   // refuse tokens whose session_id devauth never issued (default: accept, see sessionState)
	ExtraJWKSFile string // optional file with {"keys":[…]} appended to the published JWKS
}

// anyOTPCode is the code DEVAUTH_ANY_OTP accepts for every phone, the same as the demo users' test OTP.
const anyOTPCode = "123456"

// demoOTPs are the test OTPs used until supabase/config.toml declares its own [auth.sms.test_otp] entries.
var demoOTPs = map[string]string{"15555550101": anyOTPCode, "15555550102": anyOTPCode, "15555550103": anyOTPCode}

func loadConfig(getenv func(string) string) (Config, error) {
	cfg := Config{
		DatabaseURL:   getenv("DATABASE_URL"),
		PostgRESTURL:  strings.TrimRight(getenv("POSTGREST_URL"), "/"),
		Issuer:        envOr(getenv, "DEVAUTH_ISSUER", "http://127.0.0.1:54321/auth/v1"),
		PublicURL:     strings.TrimRight(getenv("DEVAUTH_PUBLIC_URL"), "/"),
		ExtraJWKSFile: getenv("DEVAUTH_EXTRA_JWKS_FILE"),
		AnyOTP:        envOr(getenv, "DEVAUTH_ANY_OTP", "1") != "0",
		StrictSession: getenv("DEVAUTH_STRICT_SESSIONS") == "1",
	}
	if cfg.DatabaseURL == "" {
		return cfg, errors.New("DATABASE_URL is required")
	}
	var err error
	if cfg.JWTExpiry, err = seconds(getenv, "DEVAUTH_JWT_EXPIRY", 3600); err != nil {
		return cfg, err
	}
	if cfg.OTPInterval, err = seconds(getenv, "DEVAUTH_OTP_INTERVAL", 60); err != nil {
		return cfg, err
	}
	if cfg.ReuseInterval, err = seconds(getenv, "DEVAUTH_REUSE_INTERVAL", 10); err != nil {
		return cfg, err
	}
	cfg.TestOTPs = map[string]string{}
	path := envOr(getenv, "DEVAUTH_CONFIG", "supabase/config.toml")
	fromFile, err := readTestOTPFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) || (err == nil && len(fromFile) == 0):
		for k, v := range demoOTPs {
			cfg.TestOTPs[k] = v
		}
	case err != nil:
		return cfg, err
	default:
		cfg.TestOTPs = fromFile
	}
	extra, err := parseOTPList(getenv("DEVAUTH_TEST_OTPS"))
	if err != nil {
		return cfg, err
	}
	for k, v := range extra {
		cfg.TestOTPs[k] = v
	}
	return cfg, nil
}

func seconds(getenv func(string) string, name string, def int) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return time.Duration(def) * time.Second, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: want a non-negative number of seconds, got %q", name, v)
	}
	return time.Duration(n) * time.Second, nil
}

// parseOTPList parses DEVAUTH_TEST_OTPS: "15555550101=123456,+15555550102=654321".
func parseOTPList(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		phone, code, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("DEVAUTH_TEST_OTPS: %q is not phone=code", item)
		}
		out[normalizePhone(phone)] = strings.TrimSpace(code)
	}
	return out, nil
}

func readTestOTPFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseTestOTPs(f)
}

// parseTestOTPs reads the [auth.sms.test_otp] table of a supabase config.toml with plain line parsing: entries are
// `15555550101 = "123456"` or `"15555550101" = "123456"`, until the next table header. It is deliberately not a
// TOML parser; the section is simple by construction and a dependency is not worth it for a dev tool.
func parseTestOTPs(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	in := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			in = strings.Trim(line, "[] \t") == "auth.sms.test_otp"
			continue
		}
		if !in {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		phone := normalizePhone(strings.Trim(strings.TrimSpace(k), `"'`))
		code := strings.Trim(strings.TrimSpace(v), `"'`)
		if phone != "" && code != "" {
			out[phone] = code
		}
	}
	return out, sc.Err()
}

// normalizePhone turns "+1 555-555-0101" into "15555550101", the form auth.users stores.
func normalizePhone(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
