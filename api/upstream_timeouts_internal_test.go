package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Each route group gets its own upstream budget: reads short, sends and other writes medium, file transfers long.
func TestUpstreamTimeoutsByRoute(t *testing.T) {
	t.Parallel()
	to := UpstreamTimeouts{}.withDefaults()
	if to.Read != DefaultReadTimeout || to.Send != DefaultSendTimeout || to.Write != DefaultWriteTimeout ||
		to.Upload != DefaultUploadTimeout {
		t.Fatalf("defaults = %+v", to)
	}
	if !(to.Read < to.Send && to.Send <= to.Write && to.Write < to.Upload) {
		t.Fatalf("budgets out of order: %+v", to)
	}
	cases := []struct {
		method, path string
		want         time.Duration
	}{
		{"GET", "/api/chat/conversations", to.Read},
		{"HEAD", "/api/chat/messages", to.Read},
		{"POST", "/api/messages/load", to.Read},
		{"POST", "/api/conversations/load", to.Read},
		{"POST", "/api/messages/send", to.Send},
		{"POST", "/api/chat/messages", to.Send},
		{"PATCH", "/api/chat/messages", to.Write},
		{"POST", "/api/conversations/delete", to.Write},
		{"POST", "/api/auth/backup-pin", to.Write},
		{"POST", "/api/files/upload", to.Upload},
		{"GET", "/api/files/0b7e4c1e-0000-4000-8000-000000000000", to.Upload},
		{"POST", "/api/auth/upload-avatar", to.Upload},
	}
	for _, c := range cases {
		if got := to.forRequest(httptest.NewRequest(c.method, c.path, nil)); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.method, c.path, got, c.want)
		}
	}
}

// The deadline reaches the handler's context.
func TestUpstreamDeadlineMiddleware(t *testing.T) {
	t.Parallel()
	s := &Server{timeouts: UpstreamTimeouts{Read: time.Second}.withDefaults()}
	var left time.Duration
	h := s.upstreamDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := r.Context().Deadline()
		if !ok {
			t.Error("no deadline")
		}
		left = time.Until(d)
		if r.Context().Err() != nil {
			t.Error(context.Cause(r.Context()))
		}
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/chat/conversations", nil))
	if left <= 0 || left > time.Second {
		t.Fatalf("deadline %v away, want within 1s", left)
	}
}
