package api

import (
	"sync"
	"time"
)

// windowLimiter is a fixed-window counter per key, kept in this process. It backs the limits that the contract
// attaches to single routes (send-sms's own limiter, the key-backup restore limit); the cross-node limits of the
// whole /api surface are a separate concern.
type windowLimiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	now    func() time.Time
	hits   map[string]*windowCount
	sweep  time.Time
}

type windowCount struct {
	n     int
	start time.Time
}

// maxLimiterKeys bounds the memory of one limiter; past it, expired windows are swept first and then the table is
// reset, which at worst forgives some callers early rather than growing without bound.
const maxLimiterKeys = 200_000

func newWindowLimiter(limit int, window time.Duration, now func() time.Time) *windowLimiter {
	return &windowLimiter{limit: limit, window: window, now: now, hits: make(map[string]*windowCount)}
}

// allow counts one hit for key and reports whether it is within the limit, and when the window resets.
func (l *windowLimiter) allow(key string) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.hits) >= maxLimiterKeys || now.Sub(l.sweep) > l.window {
		for k, c := range l.hits {
			if now.Sub(c.start) >= l.window {
				delete(l.hits, k)
			}
		}
		if len(l.hits) >= maxLimiterKeys {
			l.hits = make(map[string]*windowCount)
		}
		l.sweep = now
	}
	c := l.hits[key]
	if c == nil || now.Sub(c.start) >= l.window {
		c = &windowCount{start: now}
		l.hits[key] = c
	}
	c.n++
	return c.n <= l.limit, c.start.Add(l.window)
}
