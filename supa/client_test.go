package supa_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/authsession"
	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
	"github.com/qryptchat/suparelay/supa"
)

func client(t *testing.T, url string, timeout time.Duration) *supa.Client {
	t.Helper()
	c, err := supa.New(supa.Config{URL: url, AnonKey: devkeys.AnonKey(), ServiceRoleKey: devkeys.ServiceRoleKey(), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestErrorKindsFromRealPostgREST: the failures the routes map to 404, 403, 409 and 400 come out of the real
// PostgREST with their status and code intact.
func TestErrorKindsFromRealPostgREST(t *testing.T) {
	t.Parallel()
	c := client(t, testenv.SupabaseURL(t), 10*time.Second)
	u, other := testenv.NewUser(t), testenv.NewUser(t)
	rest := c.As(u.Token(t, time.Hour))
	ctx := context.Background()

	var row map[string]any
	err := rest.SelectOne(ctx, "conversations", supa.Q("select", "id", "id", "eq.00000000-0000-4000-8000-000000000000"), &row)
	if supa.KindOf(err) != supa.KindNotFound || !supa.IsNotFound(err) {
		t.Errorf("missing single row: kind %v, err %v", supa.KindOf(err), err)
	}
	// Inserting a conversation in someone else's name: row-level security refuses it.
	err = rest.Insert(ctx, "conversations", map[string]any{"type": "direct", "created_by": other.ID}, nil, nil)
	var e *supa.Error
	if supa.KindOf(err) != supa.KindForbidden || !errors.As(err, &e) || e.Code != "42501" || e.Status != http.StatusForbidden {
		t.Errorf("RLS refusal: kind %v, err %v", supa.KindOf(err), err)
	}
	// A webhook with an id that exists already: conflict.
	var hooks []struct {
		ID string `json:"id"`
	}
	if err := rest.Insert(ctx, "webhooks", map[string]any{"user_id": u.AuthID, "url": "https://x.example/h", "events": []string{"message.created"}},
		supa.Q("select", "id"), &hooks); err != nil || len(hooks) != 1 {
		t.Fatalf("insert webhook: %v", err)
	}
	err = rest.Insert(ctx, "webhooks", map[string]any{"id": hooks[0].ID, "user_id": u.AuthID, "url": "https://x.example/h", "events": []string{}}, nil, nil)
	if supa.KindOf(err) != supa.KindConflict {
		t.Errorf("duplicate key: kind %v, err %v", supa.KindOf(err), err)
	}
	// A malformed value: bad input.
	err = rest.Select(ctx, "conversations", supa.Q("select", "id", "id", "eq.not-a-uuid"), &row)
	if supa.KindOf(err) != supa.KindBadInput {
		t.Errorf("bad uuid: kind %v, err %v", supa.KindOf(err), err)
	}
	// Library texts stay out of Error's message for the client; the status and code are kept.
	if errors.As(err, &e) && (e.Status != http.StatusBadRequest || e.Code != "22P02") {
		t.Errorf("bad uuid error %+v", e)
	}
}

// TestUnreachableAndTimeout: a refused connection is KindUnavailable (502 at the routes), a PostgREST that does not
// answer in time is KindTimeout (504).
func TestUnreachableAndTimeout(t *testing.T) {
	t.Parallel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	err := client(t, dead, time.Second).Anon().Select(context.Background(), "users", nil, nil)
	if supa.KindOf(err) != supa.KindUnavailable {
		t.Errorf("refused: kind %v, err %v", supa.KindOf(err), err)
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	err = client(t, slow.URL, 100*time.Millisecond).Anon().Select(context.Background(), "users", nil, nil)
	if supa.KindOf(err) != supa.KindTimeout {
		t.Errorf("slow: kind %v, err %v", supa.KindOf(err), err)
	}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"message":"An invalid response was received from the upstream server"}`, http.StatusBadGateway)
	}))
	defer gw.Close()
	err = client(t, gw.URL, time.Second).Anon().Select(context.Background(), "users", nil, nil)
	if supa.KindOf(err) != supa.KindUnavailable {
		t.Errorf("gateway 502: kind %v, err %v", supa.KindOf(err), err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []supa.Config{{URL: "ftp://x", AnonKey: "k"}, {URL: "http://x"}, {URL: "::", AnonKey: "k"}} {
		if _, err := supa.New(cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}

// TestSignedUploadURLRebased: the signed URL Storage returns (relative) is rebased on the browser-facing URL.
func TestSignedUploadURLRebased(t *testing.T) {
	t.Parallel()
	st := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.EscapedPath() != "/storage/v1/object/upload/sign/encrypted-files/u%201/c/f" ||
			r.Header.Get("apikey") != devkeys.AnonKey() || r.Header.Get("Authorization") != "Bearer user-token" {
			t.Errorf("unexpected request %s %s", r.Method, r.URL.EscapedPath())
		}
		_, _ = w.Write([]byte(`{"url":"/object/upload/sign/encrypted-files/u%201/c/f?token=abc"}`))
	}))
	defer st.Close()
	c := client(t, st.URL, time.Second)
	got, err := c.CreateSignedUploadURL(context.Background(), "user-token", supa.BucketEncryptedFiles, "u 1/c/f", "https://app.example/")
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != "https://app.example/storage/v1/object/upload/sign/encrypted-files/u%201/c/f?token=abc" || got.Token != "abc" {
		t.Fatalf("signed = %+v", got)
	}
}

// TestRefreshSessionAgainstRealAuth: supa's RefreshSession is the middleware's Refresher, so its two failure kinds
// must be told apart: a token Auth refuses wraps authsession.ErrRejected (the cookie is cleared), an Auth that
// cannot be reached does not (the cookie is kept and the caller gets 503).
func TestRefreshSessionAgainstRealAuth(t *testing.T) {
	t.Parallel()
	c := client(t, testenv.SupabaseURL(t), 15*time.Second)
	ctx := context.Background()
	sess := testenv.SignIn(t, testenv.TestPhone(t))
	next, err := c.RefreshSession(ctx, sess.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if next.AccessToken == "" || next.RefreshToken == sess.RefreshToken || next.ExpiresAt == 0 || next.UserID() != sess.UserID() {
		t.Errorf("refreshed session = %+v", next)
	}
	if _, err := c.RefreshSession(ctx, "not-a-refresh-token"); !errors.Is(err, authsession.ErrRejected) {
		t.Errorf("unknown token: %v, want ErrRejected", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := client(t, dead, time.Second).RefreshSession(ctx, sess.RefreshToken); err == nil || errors.Is(err, authsession.ErrRejected) {
		t.Errorf("Auth down: %v, want an outage", err)
	}
}
