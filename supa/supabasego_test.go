package supa_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	postgrest "github.com/supabase-community/postgrest-go"

	"github.com/qryptchat/suparelay/supa"
)

// The design card names supabase-go. These tests are the evidence for not building on its sub-clients (see
// supa/doc.go and the README's package table): each shows, against a local server, a failure that supa avoids.

// TestPostgrestGoFlattensErrors: postgrest-go turns PostgREST's error answer into a formatted string. The HTTP
// status, details and hint are gone and nothing can be matched with errors.As, while the routes must tell "no row"
// (404) from an RLS refusal (403), a conflict (409) and a bad value (400). supa keeps all of it.
func TestPostgrestGoFlattensErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"code":"42501","message":"permission denied for table users","details":"d","hint":"h"}`))
	}))
	t.Cleanup(srv.Close)

	_, _, err := postgrest.NewClient(srv.URL, "public", nil).From("users").Select("*", "", false).Execute()
	// (postgrest.ExecuteError, its error body type, does not even implement error: nothing to errors.As into.)
	if err == nil || strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "hint") {
		t.Fatalf("postgrest-go error = %v; expected a flat string without status, details or hint", err)
	}

	c, _ := supa.New(supa.Config{URL: srv.URL, AnonKey: "anon"})
	var rows []map[string]any
	err = c.As("token").Select(context.Background(), "users", supa.Q("select", "*"), &rows)
	var se *supa.Error
	if !errors.As(err, &se) || se.Status != http.StatusForbidden || se.Code != "42501" || se.Details != "d" || se.Hint != "h" ||
		supa.KindOf(err) != supa.KindForbidden {
		t.Fatalf("supa error = %#v", err)
	}
}

// TestPostgrestGoSharesTheToken: postgrest-go keeps the Authorization header in the client (SetAuthToken mutates
// it), so a client shared by the server's requests sends one user's query with whichever token was set last. supa's
// handles are values scoped to one token.
func TestPostgrestGoSharesTheToken(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = w.Write([]byte(`[]`))
	}))
	t.Cleanup(srv.Close)

	shared := postgrest.NewClient(srv.URL, "public", nil)
	aliceQuery := shared.SetAuthToken("alice").From("messages").Select("*", "", false) // built for alice…
	shared.SetAuthToken("bob")                                                         // …bob's request arrives
	if _, _, err := aliceQuery.Execute(); err != nil {
		t.Fatal(err)
	}

	c, _ := supa.New(supa.Config{URL: srv.URL, AnonKey: "anon"})
	alice := c.As("alice")
	_ = c.As("bob") // another user's handle changes nothing about alice's
	var rows []map[string]any
	if err := alice.Select(context.Background(), "messages", supa.Q("select", "*"), &rows); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || !strings.Contains(seen[0], "bob") || seen[1] != "Bearer alice" {
		t.Fatalf("Authorization seen = %q; want postgrest-go's alice query sent as bob, supa's as alice", seen)
	}
}

// TestPostgrestGoIgnoresContext: postgrest-go's requests carry no context, so a request whose client went away
// (or whose deadline passed) keeps waiting on PostgREST. supa's calls end with their context.
func TestPostgrestGoIgnoresContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(10 * time.Second): // a bound, not a measurement
		}
		_, _ = w.Write([]byte(`[]`))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	c, _ := supa.New(supa.Config{URL: srv.URL, AnonKey: "anon"})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var rows []map[string]any
	if err := c.As("t").Select(ctx, "messages", supa.Q("select", "*"), &rows); supa.KindOf(err) != supa.KindTimeout {
		t.Fatalf("supa with a 50 ms deadline: %v, want a timeout", err)
	}

	done := make(chan struct{})
	go func() {
		_, _, _ = postgrest.NewClient(srv.URL, "public", nil).From("messages").Select("*", "", false).Execute()
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("postgrest-go returned while the server was still holding the request")
	case <-time.After(300 * time.Millisecond):
		// Still waiting: there is no context to cancel it with. (Released at cleanup.)
	}
}
