package webhooks

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// MemoryStore is a [Store] inside the process: deliveries survive neither a restart nor the loss of the node. It is
// the store of a single node without Redis, and of tests. Claim scans every pending delivery, which is cheap at the
// bounded queue sizes the Deliverer allows.
type MemoryStore struct {
	mu    sync.Mutex
	now   func() time.Time
	items map[string]*memItem
}

type memItem struct {
	job      []byte
	tries    int
	due      time.Time // when not claimed
	token    string    // "" = not claimed
	leaseEnd time.Time
}

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{now: time.Now, items: make(map[string]*memItem)}
}

// Add implements [Store].
func (s *MemoryStore) Add(_ context.Context, id string, job []byte, max int) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.items) >= max {
		return false, nil
	}
	if _, dup := s.items[id]; !dup {
		s.items[id] = &memItem{job: job, due: s.now()}
	}
	return true, nil
}

// Claim implements [Store].
func (s *MemoryStore) Claim(_ context.Context, n int, lease time.Duration) (ClaimResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var res ClaimResult
	base := claimToken()
	var next time.Time
	for id, it := range s.items {
		if it.token != "" && !it.leaseEnd.After(now) {
			it.token, it.due = "", now // the claimer died or stalled: due again, its attempt stays counted
		}
		if it.token == "" && !it.due.After(now) && len(res.Claims) < n {
			it.tries++
			it.token = base + ":" + strconv.Itoa(len(res.Claims))
			it.leaseEnd = now.Add(lease)
			res.Claims = append(res.Claims, Claim{ID: id, Token: it.token, Attempt: it.tries, Job: it.job})
			continue
		}
		at := it.due
		if it.token != "" {
			at = it.leaseEnd
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	res.Next = -1
	if !next.IsZero() {
		res.Next = max(next.Sub(now), 0)
	}
	if len(res.Claims) > 0 {
		res.Next = min(max(res.Next, 0), lease)
	}
	res.Pending = len(s.items)
	return res, nil
}

// Done implements [Store].
func (s *MemoryStore) Done(_ context.Context, c Claim) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[c.ID]
	if !ok || it.token != c.Token {
		return false, nil
	}
	delete(s.items, c.ID)
	return true, nil
}

// Retry implements [Store].
func (s *MemoryStore) Retry(_ context.Context, c Claim, delay time.Duration, counted bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[c.ID]
	if !ok || it.token != c.Token {
		return false, nil
	}
	it.token, it.due = "", s.now().Add(delay)
	if !counted {
		it.tries--
	}
	return true, nil
}
