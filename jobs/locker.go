// Package jobs runs periodic background work that must happen on exactly one node per period, such as the
// 60-second message-expiry sweep of routes.md §2.4 (fn_cleanup_expired_messages).
//
// A [Runner] divides wall-clock time into windows of one Interval (aligned to multiples of the interval, the same
// on every node) and, at the start of each window, tries to claim that window through a [Locker]. The node that
// wins runs the job once; the others skip it. The claim is a lock on a per-window key that is never released, so
// a node that ticks late cannot run the same window again. A second, released lock on the job itself keeps runs
// from overlapping if one overruns into the next window (its TTL is shorter than the interval, and the run's
// context ends when it expires).
//
// [RedisLocker] coordinates nodes through Redis (SET NX PX with a random token; release by compare-and-delete);
// [LocalLocker] serves a single node.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/rediskv"
)

// Locker takes named locks with an expiry.
type Locker interface {
	// TryLock takes key for ttl if no one holds it. ok is false when someone else does (err is nil then). unlock
	// releases the lock only if it is still the caller's: after expiry and a new holder, it does nothing.
	TryLock(ctx context.Context, key string, ttl time.Duration) (unlock func(context.Context) error, ok bool, err error)
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RedisLocker is a Locker shared by every node using the same Redis and prefix (internal/rediskv: SET NX PX with a
// random token; release by compare-and-delete).
type RedisLocker struct{ kv rediskv.Store }

var _ Locker = (*RedisLocker)(nil)

// NewRedisLocker returns a Locker whose keys are prefix+key (e.g. prefix "suparelay:jobs:").
func NewRedisLocker(client redis.UniversalClient, prefix string) *RedisLocker {
	return &RedisLocker{kv: rediskv.New(client, prefix)}
}

// TryLock implements [Locker].
func (l *RedisLocker) TryLock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, bool, error) {
	if ttl < time.Millisecond {
		return nil, false, errors.New("jobs: lock ttl below 1ms")
	}
	token := []byte(newToken())
	got, err := l.kv.SetNX(ctx, key, token, ttl)
	if err != nil {
		return nil, false, fmt.Errorf("jobs: take lock %s: %w", key, err)
	}
	if !got {
		return nil, false, nil
	}
	unlock := func(ctx context.Context) error {
		if _, err := l.kv.DelIfValue(ctx, key, token); err != nil {
			return fmt.Errorf("jobs: release lock %s: %w", key, err)
		}
		return nil
	}
	return unlock, true, nil
}

// LocalLocker is a Locker for a single node (no Redis configured). Expired locks are forgotten on the next
// TryLock, so its memory is bounded by the locks alive at once.
type LocalLocker struct {
	mu    sync.Mutex
	locks map[string]localLock
	now   func() time.Time
}

type localLock struct {
	token   string
	expires time.Time
}

var _ Locker = (*LocalLocker)(nil)

// NewLocalLocker returns an empty LocalLocker.
func NewLocalLocker() *LocalLocker {
	return &LocalLocker{locks: make(map[string]localLock), now: time.Now}
}

// TryLock implements [Locker].
func (l *LocalLocker) TryLock(_ context.Context, key string, ttl time.Duration) (func(context.Context) error, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for k, v := range l.locks {
		if !now.Before(v.expires) {
			delete(l.locks, k)
		}
	}
	if _, held := l.locks[key]; held {
		return nil, false, nil
	}
	token := newToken()
	l.locks[key] = localLock{token: token, expires: now.Add(ttl)}
	unlock := func(context.Context) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if v, ok := l.locks[key]; ok && v.token == token {
			delete(l.locks, key)
		}
		return nil
	}
	return unlock, true, nil
}
