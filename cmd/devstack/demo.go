package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/supa"
)

// demoUsers are the seeded demo accounts (supabase/seed.sql); each accepts devkeys.TestOTP.
var demoUsers = []struct{ name, phone string }{
	{"alice", "+" + devkeys.DemoPhones[0]}, {"bob", "+" + devkeys.DemoPhones[1]}, {"carol", "+" + devkeys.DemoPhones[2]},
}

// cookieName derives the @supabase/ssr cookie name from the Supabase URL the frontend was built with: sb-<first
// label of the host>-auth-token.
func cookieName(supabaseURL string) string {
	ref := "127"
	if u, err := url.Parse(supabaseURL); err == nil && u.Hostname() != "" {
		ref, _, _ = strings.Cut(u.Hostname(), ".")
	}
	return "sb-" + ref + "-auth-token"
}

// cookieValue encodes a session as @supabase/ssr 0.7 does: "base64-" + unpadded base64url of the JSON.
func cookieValue(sessionJSON []byte) string {
	return "base64-" + base64.RawURLEncoding.EncodeToString(sessionJSON)
}

// runDemoSessions signs each demo user in through the real Supabase Auth (POST /auth/v1/otp, then /verify with
// the test code), prints the access token, the session cookie and sample curl lines, and writes
// `export ALICE_TOKEN=… ALICE_COOKIE=…` lines to -env-file for the shell to source.
func runDemoSessions(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("demo-sessions", flag.ContinueOnError)
	base := fs.String("supabase", "", "the stack's Supabase URL (the gateway)")
	appURL := fs.String("app-url", "http://localhost:3000", "the app URL used in the sample curl lines")
	publicURL := fs.String("public-url", "", "the Supabase URL the frontend uses (names the cookie); default -supabase")
	envFile := fs.String("env-file", "", "write export lines for ALICE_TOKEN, ALICE_COOKIE, … here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" {
		return fmt.Errorf("demo-sessions: -supabase is required")
	}
	if *publicURL == "" {
		*publicURL = *base
	}
	client, err := supa.New(supa.Config{URL: strings.TrimRight(*base, "/"), AnonKey: devkeys.AnonKey(), Timeout: 15 * time.Second})
	if err != nil {
		return err
	}
	name := cookieName(*publicURL)
	var exports strings.Builder
	exports.WriteString("# written by devstack demo-sessions — development only; source it in your shell\n")
	for _, d := range demoUsers {
		if err := client.SendOTP(ctx, d.phone); err != nil {
			return fmt.Errorf("%s: otp: %w", d.name, err)
		}
		sess, err := client.VerifyOTP(ctx, d.phone, devkeys.TestOTP)
		if err != nil {
			return fmt.Errorf("%s: verify: %w", d.name, err)
		}
		cookie := cookieValue(sess.Raw)
		upper := strings.ToUpper(d.name)
		fmt.Fprintf(&exports, "export %s_TOKEN='%s' %s_COOKIE='%s'\n", upper, sess.AccessToken, upper, cookie)
		fmt.Fprintf(w, "\n--- %s (%s) auth uid %s, access token valid until %s\n", d.name, d.phone, sess.UserID(),
			time.Unix(sess.ExpiresAt, 0).Format(time.RFC3339))
		fmt.Fprintf(w, "export %s_TOKEN='%s'\nexport %s_COOKIE='%s'\n", upper, sess.AccessToken, upper, cookie)
		fmt.Fprintf(w, "curl -s %s/api/auth/user -H \"Authorization: Bearer $%s_TOKEN\"\n", *appURL, upper)
		fmt.Fprintf(w, "curl -sN %s/api/events --cookie \"%s=$%s_COOKIE\"\n", *appURL, name, upper)
	}
	if *envFile != "" {
		if err := writeFileAtomic(*envFile, []byte(exports.String())); err != nil {
			return err
		}
		fmt.Fprintf(w, "\n(the export lines are in %s: source it)\n", *envFile)
	}
	return nil
}

// signIn asks Auth for an OTP for phone and verifies it with the test code. It returns the compact session JSON
// (what @supabase/ssr stores in the cookie) and its decoded fields.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".devstack-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
