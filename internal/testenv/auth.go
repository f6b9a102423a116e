package testenv

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/authsession"
	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/supa"
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

// SignIn signs phone in through the real Supabase Auth behind the gateway (POST /auth/v1/otp, then /verify with
// the test code), with the same client the server uses, and returns the session. The user is created by Auth when
// it does not exist yet.
func SignIn(t testing.TB, phone string) *authsession.Session {
	t.Helper()
	c, err := supa.New(supa.Config{URL: SupabaseURL(t), AnonKey: devkeys.AnonKey(), Timeout: 15 * time.Second,
		Transport: &http.Transport{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.SendOTP(ctx, phone); err != nil {
		t.Fatalf("otp for %s: %v", phone, err)
	}
	s, err := c.VerifyOTP(ctx, phone, devkeys.TestOTP)
	if err != nil {
		t.Fatalf("verify %s: %v", phone, err)
	}
	return s
}
