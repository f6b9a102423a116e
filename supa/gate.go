package supa

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// ErrOverloaded means this node already had its share of PostgREST calls in flight and no slot freed up in time.
// The call was never sent, so nothing happened in the database: the caller may answer 503 and the client retry.
var ErrOverloaded = errors.New("supa: too many PostgREST calls in flight on this node")

// gate bounds the PostgREST calls in flight from one node. PostgREST serves a fixed pool of database connections
// (10 by default); calls beyond it queue inside PostgREST until its own timeout, so under overload every request
// waits seconds and then fails — and a write may commit after its caller was told it failed. Bounding the calls
// below that pool and refusing quickly past a short wait keeps answers fast and outcomes known.
type gate struct {
	slots  chan struct{}
	wait   time.Duration
	shed   atomic.Uint64
	queued atomic.Int64
}

// newGate returns a gate of max slots; max ≤ 0 means no bound (nil gate).
func newGate(max int, wait time.Duration) *gate {
	if max <= 0 {
		return nil
	}
	return &gate{slots: make(chan struct{}, max), wait: wait}
}

// gateWaitKey carries a call's own patience for a slot (WithGateWait).
type gateWaitKey struct{}

// WithGateWait lets the calls made with ctx wait up to d for a slot instead of the client's QueueWait. For calls
// whose refusal costs the user more than a short wait: the event stream's profile lookup, because a browser whose
// EventSource gets a non-200 answer stops retrying after five attempts (frontend.md §2).
func WithGateWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, gateWaitKey{}, d)
}

// enter takes a slot, waiting at most g.wait (or the ctx's WithGateWait, and never past ctx); it returns
// ErrOverloaded when none freed up.
func (g *gate) enter(ctx context.Context) error {
	if g == nil {
		return nil
	}
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	wait := g.wait
	if d, ok := ctx.Value(gateWaitKey{}).(time.Duration); ok {
		wait = d
	}
	if wait <= 0 {
		g.shed.Add(1)
		return ErrOverloaded
	}
	g.queued.Add(1)
	defer g.queued.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-t.C:
		g.shed.Add(1)
		return ErrOverloaded
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leave gives the slot back.
func (g *gate) leave() {
	if g != nil {
		<-g.slots
	}
}

// GateStats is what the PostgREST gate has seen, for metrics.
type GateStats struct {
	Limit    int    // slots; 0 when unbounded
	InFlight int    // calls holding a slot now
	Waiting  int64  // calls waiting for one now
	Shed     uint64 // calls refused with ErrOverloaded since start
}

// GateStats reports the PostgREST gate's state.
func (c *Client) GateStats() GateStats {
	g := c.gate
	if g == nil {
		return GateStats{}
	}
	return GateStats{Limit: cap(g.slots), InFlight: len(g.slots), Waiting: g.queued.Load(), Shed: g.shed.Load()}
}
