package supa

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGateShedsPastItsSlots: with every slot held by a slow PostgREST call, the next call waits QueueWait and is
// refused with ErrOverloaded (KindOverloaded) without reaching the server; once a slot frees, calls go through.
func TestGateShedsPastItsSlots(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	arrived := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		mu.Unlock()
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL, AnonKey: "anon", MaxConcurrent: 2, QueueWait: 50 * time.Millisecond,
		Transport: &http.Transport{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out []any
			_ = c.As("tok").Select(ctx, "t", nil, &out)
		}()
	}
	for c.GateStats().InFlight < 2 {
		time.Sleep(time.Millisecond)
	}
	var out []any
	err = c.As("tok").Select(ctx, "t", nil, &out)
	if !errors.Is(err, ErrOverloaded) || KindOf(err) != KindOverloaded {
		t.Fatalf("third call: %v (kind %v), want ErrOverloaded", err, KindOf(err))
	}
	if st := c.GateStats(); st.Shed != 1 || st.Limit != 2 {
		t.Fatalf("stats %+v", st)
	}
	close(release)
	wg.Wait()
	mu.Lock()
	n := arrived
	mu.Unlock()
	if n != 2 {
		t.Fatalf("%d calls reached the server, want 2 (the shed one must not)", n)
	}
	if err := c.As("tok").Select(ctx, "t", nil, &out); err != nil {
		t.Fatalf("after the slots freed: %v", err)
	}
}

// TestGateWaitsForASlot: a call that finds the slots full but one frees within QueueWait goes through.
func TestGateWaitsForASlot(t *testing.T) {
	g := newGate(1, time.Second)
	if err := g.enter(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(20 * time.Millisecond); g.leave() }()
	if err := g.enter(context.Background()); err != nil {
		t.Fatalf("second enter: %v", err)
	}
	if newGate(0, 0) != nil {
		t.Fatal("max 0 must mean no gate")
	}
}

// TestObserveNamesTheUpstream: every exchange is reported with its upstream, status and a duration.
func TestObserveNamesTheUpstream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/auth/") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	var mu sync.Mutex
	var calls []Call
	c, err := New(Config{URL: srv.URL, AnonKey: "anon", Transport: &http.Transport{},
		Observe: func(call Call) { mu.Lock(); calls = append(calls, call); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	_ = c.As("tok").Select(context.Background(), "t", nil, &out)
	_, _ = c.GetUser(context.Background(), "tok")
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 || calls[0].Upstream != "rest" || calls[0].Status != 200 || calls[1].Upstream != "auth" ||
		calls[1].Status != 503 || calls[0].Duration <= 0 {
		t.Fatalf("calls %+v", calls)
	}
}

// TestGateWaitPerCall: a call made with WithGateWait waits that long for a slot instead of the client's QueueWait.
func TestGateWaitPerCall(t *testing.T) {
	g := newGate(1, time.Millisecond)
	if err := g.enter(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(50 * time.Millisecond); g.leave() }()
	if err := g.enter(WithGateWait(context.Background(), 5*time.Second)); err != nil {
		t.Fatalf("patient call: %v", err)
	}
	if err := g.enter(context.Background()); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("impatient call: %v, want ErrOverloaded", err)
	}
}
