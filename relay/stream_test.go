package relay

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeWriter is an in-memory ResponseWriter for tests that need fake time (synctest) or a reader that stalls.
type fakeWriter struct {
	mu      sync.Mutex
	hdr     http.Header
	status  int
	buf     bytes.Buffer
	writes  int
	stallAt int           // the stallAt-th write (1-based) blocks until release is closed; 0 = never
	release chan struct{} // closed to unblock
}

func (f *fakeWriter) Header() http.Header { return f.hdr }
func (f *fakeWriter) WriteHeader(s int)   { f.status = s }
func (f *fakeWriter) Flush()              {}
func (f *fakeWriter) Write(b []byte) (int, error) {
	f.mu.Lock()
	f.writes++
	stall := f.stallAt > 0 && f.writes == f.stallAt
	f.mu.Unlock()
	if stall {
		<-f.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.Write(b)
}
func (f *fakeWriter) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.String()
}

func TestHeartbeatAndExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h := NewHub(NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{}, nil, nil)
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		fw := &fakeWriter{hdr: http.Header{}}
		req := httptest.NewRequest(http.MethodGet, "/api/events", nil).WithContext(ctx)
		done := make(chan struct{})
		start := time.Now()
		go func() {
			defer close(done)
			h.ServeStream(fw, req, "u", start.Add(time.Hour))
		}()
		synctest.Wait()
		if !strings.HasPrefix(fw.String(), "event: CONNECTED\n") {
			t.Fatalf("stream starts %q", fw.String())
		}
		hb := func(at time.Time) string { return ": keep-alive " + strconv.FormatInt(at.UnixMilli(), 10) + "\n\n" }

		time.Sleep(25 * time.Second)
		synctest.Wait()
		if !strings.HasSuffix(fw.String(), hb(start.Add(25*time.Second))) {
			t.Fatalf("no heartbeat at 25s: %q", fw.String())
		}
		// An event resets the heartbeat timer.
		time.Sleep(5 * time.Second)
		if err := h.PublishToUser(ctx, "u", textEvent("E", "x")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		before := strings.Count(fw.String(), ": keep-alive")
		time.Sleep(24 * time.Second)
		synctest.Wait()
		if n := strings.Count(fw.String(), ": keep-alive"); n != before {
			t.Fatalf("heartbeat 24s after an event (timer not reset)")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !strings.HasSuffix(fw.String(), hb(start.Add(55*time.Second))) {
			t.Fatalf("no heartbeat 25s after the event: %q", fw.String())
		}
		// The stream simply closes when the token expires.
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("stream still open after token expiry")
		}
		h.Shutdown(ctx)
		cancel()
	})
}

func TestRoomGraceExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h := NewHub(NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{RoomGrace: time.Minute}, nil, nil)
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		open := func() (*fakeWriter, context.CancelFunc, chan struct{}) {
			fw := &fakeWriter{hdr: http.Header{}}
			sctx, scancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				h.ServeStream(fw, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(sctx), "u", time.Time{})
			}()
			synctest.Wait()
			return fw, scancel, done
		}
		mustJoin(t, h, "r", "u")
		_, c1, d1 := open()
		time.Sleep(10 * time.Minute) // a stream keeps the membership alive far beyond the grace
		c1()
		<-d1
		time.Sleep(50 * time.Second) // within the grace: inherited
		fw, c2, d2 := open()
		mustPublish(t, h, "r", textEvent("E", "kept"), PublishOptions{})
		synctest.Wait()
		if !strings.Contains(fw.String(), `"kept"`) {
			t.Fatalf("membership lost within grace: %q", fw.String())
		}
		c2()
		<-d2
		time.Sleep(2 * time.Minute) // past the grace: gone
		fw, c3, d3 := open()
		mustPublish(t, h, "r", textEvent("E", "gone"), PublishOptions{})
		synctest.Wait()
		if strings.Contains(fw.String(), `"gone"`) {
			t.Fatalf("membership outlived the grace period")
		}
		c3()
		<-d3
		// A join without any stream lives for the grace period too.
		mustJoin(t, h, "r", "u")
		time.Sleep(30 * time.Second)
		fw, c4, d4 := open()
		mustPublish(t, h, "r", textEvent("E", "early-join"), PublishOptions{})
		synctest.Wait()
		if !strings.Contains(fw.String(), `"early-join"`) {
			t.Fatalf("join made before the stream was lost: %q", fw.String())
		}
		c4()
		<-d4
		h.Shutdown(ctx)
		cancel()
	})
}

func TestSlowReaderClosedOthersKeepReceiving(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{QueueSize: 4})
	srv := testServer(t, h)
	fast := dial(t, srv.URL, "fast", "")
	fast.next(t)
	mustJoin(t, h, "r", "fast")
	mustJoin(t, h, "r", "slow")

	// The slow reader's second write (the first event after CONNECTED) never completes until released.
	fw := &fakeWriter{hdr: http.Header{}, stallAt: 2, release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeStream(fw, httptest.NewRequest(http.MethodGet, "/", nil), "slow", time.Time{})
	}()
	waitFor(t, func() bool { // registered and its rooms loaded, so events reach its queue live
		h.mu.Lock()
		defer h.mu.Unlock()
		us := h.users["slow"]
		return us != nil && !us.loading
	})
	for i := 0; i < 20; i++ {
		mustPublish(t, h, "r", textEvent("E", strconv.Itoa(i)), PublishOptions{})
		if ev := fast.next(t); !strings.Contains(ev.Data, `"`+strconv.Itoa(i)+`"`) {
			t.Fatalf("fast reader got %v at %d", ev, i)
		}
	}
	if got := counterValue(t, h.m.slowCloses); got != 1 {
		t.Fatalf("slow-consumer closes = %v, want 1", got)
	}
	close(fw.release)
	<-done
	if h.Streams() != 1 {
		t.Fatalf("streams = %d, want 1", h.Streams())
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
