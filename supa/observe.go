package supa

import (
	"net/http"
	"strings"
	"time"
)

// Call is one HTTP exchange with Supabase as Config.Observe sees it: which upstream, how it ended, how long it took
// (until the answer's headers). supa keeps no metrics itself; cmd/suparelay turns these into Prometheus series.
type Call struct {
	Upstream string // "rest" (PostgREST), "auth", "storage", or "other"
	Method   string
	Status   int // 0 when no answer came (refused, reset, timed out)
	Duration time.Duration
	Err      error // the transport's error, nil when an answer came
}

// upstreamOf names the Supabase service a gateway path belongs to.
func upstreamOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/rest/v1/"):
		return "rest"
	case strings.HasPrefix(path, "/auth/v1/"):
		return "auth"
	case strings.HasPrefix(path, "/storage/v1/"):
		return "storage"
	}
	return "other"
}

// observed is the client's transport with every exchange reported to observe.
type observed struct {
	next    http.RoundTripper
	observe func(Call)
}

func (o observed) RoundTrip(r *http.Request) (*http.Response, error) {
	t0 := time.Now()
	resp, err := o.next.RoundTrip(r)
	c := Call{Upstream: upstreamOf(r.URL.Path), Method: r.Method, Duration: time.Since(t0), Err: err}
	if resp != nil {
		c.Status = resp.StatusCode
	}
	o.observe(c)
	return resp, err
}
