package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qryptchat/suparelay/api"
	"github.com/qryptchat/suparelay/internal/devkeys"
)

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestClientGoneIsNotASupabaseFailure: a browser that reloads while its request waits on Supabase (the end-to-end
// test does this on every navigation during the SSE stream's set-up) cancels the call. That is answered 499 and
// logged at debug level, not reported as a Supabase failure (a 502 and a warning).
func TestClientGoneIsNotASupabaseFailure(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select { // a PostgREST that has not answered yet
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)

	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	srv := newTestServer(t, testServerConfig{SupabaseURL: slow.URL, JWKSURL: deadSupabase + "/jwks", Logger: log,
		Adjust: func(c *api.Config) { c.Registry = reg }}).srv
	tok, _ := devkeys.SignHS256(jwt.MapClaims{"sub": "22222222-2222-4222-8222-222222222222", "aud": "authenticated",
		"role": "authenticated", "exp": time.Now().Add(time.Hour).Unix(), "phone": "15555550102"})

	reqCtx, leave := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(reqCtx, http.MethodGet, srv.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	done := make(chan error, 1)
	go func() {
		res, err := srv.Client().Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the profile lookup never reached Supabase")
	}
	leave() // the browser navigates away
	<-done

	// The handler ends once the cancelled call returns: its status shows in the latency metric.
	var statuses []string
	deadline := time.Now().Add(5 * time.Second)
	for len(statuses) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		statuses = eventStatuses(t, reg)
	}
	if strings.Join(statuses, ",") != "499" {
		t.Fatalf("statuses of /api/events = %v, want [499]", statuses)
	}
	out := logs.String()
	if strings.Contains(out, "supabase call failed") || !strings.Contains(out, "client went away") {
		t.Fatalf("log = %s, want a debug line that the client went away and no Supabase failure", out)
	}
}

// eventStatuses returns the status labels recorded for GET /api/events.
func eventStatuses(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range families {
		if f.GetName() != "suparelay_http_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == "/api/events" {
				out = append(out, labels["status"])
			}
		}
	}
	return out
}
