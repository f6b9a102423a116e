package api

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackgroundClose: a task started before Close finishes with its context intact and Close waits for it; no
// task starts once Close was called; a task still running when Close's context ends is canceled and Close says so.
func TestBackgroundClose(t *testing.T) {
	t.Parallel()
	s := New(Config{})
	release := make(chan struct{})
	var finished, canceledEarly atomic.Bool
	if !s.goBackground("slow", func(ctx context.Context) {
		<-release
		canceledEarly.Store(ctx.Err() != nil)
		finished.Store(true)
	}) {
		t.Fatal("goBackground = false before Close")
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closed <- s.Close(ctx)
	}()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a task was running", err)
	case <-time.After(100 * time.Millisecond):
	}
	var ranLate atomic.Bool
	if s.goBackground("late", func(context.Context) { ranLate.Store(true) }) {
		t.Error("goBackground = true after Close")
	}
	close(release)
	if err := <-closed; err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
	if !finished.Load() || canceledEarly.Load() {
		t.Errorf("task finished = %v, canceled before its end = %v; want true, false", finished.Load(), canceledEarly.Load())
	}
	if ranLate.Load() {
		t.Error("a task started after Close ran")
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestBackgroundCloseCancels: when Close's context ends first, running tasks see their context canceled and
// return; Close reports the deadline.
func TestBackgroundCloseCancels(t *testing.T) {
	t.Parallel()
	s := New(Config{})
	returned := make(chan error, 1)
	s.goBackground("stuck", func(ctx context.Context) {
		<-ctx.Done()
		returned <- ctx.Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the deadline", err)
	}
	select {
	case err := <-returned:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("task context error = %v, want canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("task was not canceled")
	}
}
