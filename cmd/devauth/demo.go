package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// demoUsers are the seeded demo accounts (common brief); their test OTP is 123456.
var demoUsers = []struct{ name, phone string }{
	{"alice", "+15555550101"}, {"bob", "+15555550102"}, {"carol", "+15555550103"},
}

// cookieName derives the @supabase/ssr cookie name from the Supabase URL the frontend uses (auth.md §4.1).
func cookieName(supabaseURL string) string {
	ref := "127"
	if u, err := url.Parse(supabaseURL); err == nil && u.Hostname() != "" {
		ref, _, _ = strings.Cut(u.Hostname(), ".")
	}
	return "sb-" + ref + "-auth-token"
}

// cookieValue encodes a session JSON as @supabase/ssr 0.7 does: "base64-" + base64url without padding.
func cookieValue(sessionJSON []byte) string {
	return "base64-" + base64.RawURLEncoding.EncodeToString(sessionJSON)
}

// printDemoSessions signs each demo user in through the running devauth's real /auth/v1/verify and prints a ready
// access token, the matching session cookie and sample curl lines for the app.
func printDemoSessions(ctx context.Context, w io.Writer, base, appURL string) error {
	base = strings.TrimRight(base, "/")
	client := &http.Client{Timeout: 10 * time.Second}
	name := cookieName(base)
	for _, d := range demoUsers {
		body, _ := json.Marshal(map[string]string{"type": "sms", "phone": d.phone, "token": anyOTPCode})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/auth/v1/verify", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("apikey", devkeys.AnonKey())
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: verify answered %d: %s", d.name, resp.StatusCode, raw)
		}
		var sess sessionJSON
		if err := json.Unmarshal(raw, &sess); err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return err
		}
		cookie := name + "=" + cookieValue(compact.Bytes())
		fmt.Fprintf(w, "\n--- %s (%s) auth uid %s, access token valid until %s\n", d.name, d.phone, sess.User.ID,
			time.Unix(sess.ExpiresAt, 0).Format(time.RFC3339))
		fmt.Fprintf(w, "access_token:  %s\nrefresh_token: %s\ncookie:        %s\n", sess.AccessToken, sess.RefreshToken, cookie)
		fmt.Fprintf(w, "curl -s -H 'Authorization: Bearer %s' %s/api/auth/user\n", sess.AccessToken, appURL)
		fmt.Fprintf(w, "curl -s --cookie '%s' %s/api/auth/session\n", cookie, appURL)
	}
	return nil
}
