package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// TestPhone returns a number of the stack's test phone block (E.164 with '+'), for which the real Supabase Auth
// accepts devkeys.TestOTP without sending an SMS. Numbers come from a sequence in the stack database, so no two
// tests of one stack get the same one; when the block wraps around (a long-lived dev stack), the earlier owner of
// the number is detached from it first.
func TestPhone(t testing.TB) string {
	t.Helper()
	db := DB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int64
	for attempt := 0; ; attempt++ {
		// Creating the schema and sequence races between test processes; a lost race is simply retried.
		_, err := db.Exec(ctx, `create schema if not exists suparelay_test;
		                        create sequence if not exists suparelay_test.test_phone`)
		if err == nil || attempt == 3 {
			if err != nil {
				t.Fatalf("test phone sequence: %v", err)
			}
			break
		}
	}
	if err := db.QueryRow(ctx, `select nextval('suparelay_test.test_phone')`).Scan(&n); err != nil {
		t.Fatalf("test phone: %v", err)
	}
	phone := devkeys.TestPhone(int(n - 1))
	if n > devkeys.TestPhoneCount {
		if _, err := db.Exec(ctx, `update auth.users set phone = null where phone = $1`, phone); err != nil {
			t.Fatalf("free test phone: %v", err)
		}
		if _, err := db.Exec(ctx, `update public.users set phone_number = '+0' || replace(id::text, '-', '')
		                           where phone_number = $1`, "+"+phone); err != nil {
			t.Fatalf("free test phone: %v", err)
		}
	}
	return "+" + phone
}

// Session is a real session of the real Supabase Auth: its answer to /verify.
type Session struct {
	Raw          json.RawMessage // the whole answer, as @supabase/ssr stores it in the cookie
	AccessToken  string          `json:"access_token"`
	RefreshToken string          `json:"refresh_token"`
	ExpiresAt    int64           `json:"expires_at"`
	User         struct {
		ID    string `json:"id"`
		Phone string `json:"phone"`
	} `json:"user"`
}

// SignIn signs phone in through the real Supabase Auth behind the gateway (POST /auth/v1/otp, then /verify with
// the test code) and returns the session. The user is created by Auth when it does not exist yet.
func SignIn(t testing.TB, phone string) Session {
	t.Helper()
	base := SupabaseURL(t)
	if _, err := authPost(base+"/auth/v1/otp", map[string]any{"phone": phone}); err != nil {
		t.Fatalf("otp for %s: %v", phone, err)
	}
	raw, err := authPost(base+"/auth/v1/verify", map[string]string{"type": "sms", "phone": phone, "token": devkeys.TestOTP})
	if err != nil {
		t.Fatalf("verify %s: %v", phone, err)
	}
	var s Session
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		t.Fatal(err)
	}
	s.Raw = compact.Bytes()
	return s
}

// authClient has its own transport: tests must not share connections with the servers they start.
var authClient = func() *http.Client { c := NewClient(); c.Timeout = 15 * time.Second; return c }()

func authPost(u string, body any) ([]byte, error) {
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("apikey", devkeys.AnonKey())
	res, err := authClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", res.StatusCode, raw)
	}
	return raw, nil
}
