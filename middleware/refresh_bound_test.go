package middleware

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/authsession"
)

// heldRefresher holds every exchange until release is closed, then refuses it; it counts the calls.
type heldRefresher struct {
	calls   atomic.Int64
	release chan struct{}
}

func (h *heldRefresher) RefreshSession(ctx context.Context, _ string) (*authsession.Session, error) {
	h.calls.Add(1)
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return nil, fmt.Errorf("%w: test", authsession.ErrRejected)
}

// TestRefreshFlightsBoundedPerUser: one user's genuine expired token with made-up refresh tokens starts at most
// refreshFlightsPerUser exchanges at a time (each a goroutine and a call to Auth); the requests beyond get 503
// at once and keep their cookie; another user is not affected; once the exchanges end the user may refresh again.
func TestRefreshFlightsBoundedPerUser(t *testing.T) {
	t.Parallel()
	ec := newECSigner(t, "k")
	st := &authStack{ks: newKeyServer(t, ec.jwk()), ec: ec, echo: &echoHandler{}}
	st.v = newTestVerifier(t, st.ks)
	held := &heldRefresher{release: make(chan struct{})}
	srv := httptest.NewServer(st.chain(t, held, nil, true))
	t.Cleanup(srv.Close)
	cookieFor := func(sub, rt string) string {
		tok := ec.sign(t, userClaims(sub, -time.Minute))
		return cookieHeader(testCookie, sessionJSON(t, tok, rt, sub, time.Now().Add(-time.Minute), nil))
	}
	alice, bob := newUUID(), newUUID()

	const n = 12
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := doReq(t, srv.URL, "", cookieFor(alice, fmt.Sprintf("made-up-%d", i)))
			codes <- resp.StatusCode
		}()
	}
	// The requests over the bound are answered while the others still wait on Auth.
	for range n - refreshFlightsPerUser {
		select {
		case c := <-codes:
			if c != http.StatusServiceUnavailable {
				t.Fatalf("request over the bound: status %d, want 503", c)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("requests over the bound were not answered while the exchanges were held")
		}
	}
	if c := held.calls.Load(); c != refreshFlightsPerUser {
		t.Fatalf("exchanges started for one user: %d, want %d", c, refreshFlightsPerUser)
	}
	// Another user still refreshes.
	bobDone := make(chan int, 1)
	go func() {
		resp, _ := doReq(t, srv.URL, "", cookieFor(bob, "bobs"))
		bobDone <- resp.StatusCode
	}()
	for deadline := time.Now().Add(5 * time.Second); held.calls.Load() < refreshFlightsPerUser+1; {
		if time.Now().After(deadline) {
			t.Fatal("another user's refresh did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(held.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusUnauthorized {
			t.Errorf("held exchange: status %d, want 401 (refused by Auth)", c)
		}
	}
	if c := <-bobDone; c != http.StatusUnauthorized {
		t.Errorf("bob: status %d, want 401", c)
	}
	// The bound is on exchanges in progress, not a ban: with them over, alice can refresh again.
	before := held.calls.Load()
	if resp, _ := doReq(t, srv.URL, "", cookieFor(alice, "later")); resp.StatusCode != http.StatusUnauthorized ||
		held.calls.Load() != before+1 {
		t.Fatalf("alice after the exchanges ended: %d, calls %d→%d", resp.StatusCode, before, held.calls.Load())
	}
}

// TestRefreshOwner: the owner is the token's sub; a token without one counts under its own hash.
func TestRefreshOwner(t *testing.T) {
	t.Parallel()
	ec := newECSigner(t, "k")
	sub := newUUID()
	if got := refreshOwner(ec.sign(t, userClaims(sub, -time.Minute))); got != "sub:"+sub {
		t.Errorf("owner = %q, want sub:%s", got, sub)
	}
	a, b := refreshOwner("not.a.jwt"), refreshOwner("other")
	if a == b || a[:4] != "tok:" {
		t.Errorf("owners of unreadable tokens: %q %q", a, b)
	}
}
