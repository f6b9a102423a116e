package relay

import (
	"context"
	"crypto/rand"
	"sync"
	"time"
)

// MemoryBrokerConfig configures a MemoryBroker; zero fields take the defaults.
type MemoryBrokerConfig struct {
	HistorySize int           // records kept for History (default DefaultHistorySize)
	HistoryTTL  time.Duration // records older than this are not served, and dropped (default DefaultHistoryTTL)
	// HistoryMaxBytes bounds the bytes of the records kept (default DefaultHistoryMaxBytes); the oldest go first.
	HistoryMaxBytes int64
}

// messageOverhead approximates what a kept Message costs beyond its data (the slot, the epoch string header).
const messageOverhead = 64

// MemoryBroker is the single-node Broker: a mutex, a ring of recent records and a map of memberships. It is the
// default when no Redis is configured and the reference the Redis broker is tested against.
type MemoryBroker struct {
	cfg   MemoryBrokerConfig
	epoch string

	mu      sync.Mutex
	h       BrokerHandler
	closed  bool
	head    uint64
	ring    []Message // ring[i%len] holds offset i+1 ... kept contiguous: oldest = head-n+1
	n       int
	bytes   int64 // of the n records kept
	evicted [numEvictReasons]uint64
	members map[string]*memMember           // user → membership
	rooms   map[string]map[string]bool      // room → users (reverse index, for CloseRoom)
	leases  map[string]map[string]time.Time // user → stream lease → expiry
	stop    chan struct{}
}

type memMember struct {
	rooms   map[string]uint64
	expires time.Time
}

var _ Broker = (*MemoryBroker)(nil)

// NewMemoryBroker returns a MemoryBroker with a fresh random epoch.
func NewMemoryBroker(cfg MemoryBrokerConfig) *MemoryBroker {
	if cfg.HistorySize <= 0 {
		cfg.HistorySize = DefaultHistorySize
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = DefaultHistoryTTL
	}
	if cfg.HistoryMaxBytes <= 0 {
		cfg.HistoryMaxBytes = DefaultHistoryMaxBytes
	}
	return &MemoryBroker{
		cfg: cfg, epoch: newEpoch(), ring: make([]Message, cfg.HistorySize),
		members: map[string]*memMember{}, rooms: map[string]map[string]bool{},
		leases: map[string]map[string]time.Time{}, stop: make(chan struct{}),
	}
}

// newEpoch returns 12 random base-36 characters: no '-' (the id separator) and no control characters.
func newEpoch() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b)
}

// Subscribe registers h and starts a janitor that drops expired memberships until ctx ends or Close.
func (b *MemoryBroker) Subscribe(ctx context.Context, h BrokerHandler) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrBrokerClosed
	}
	b.h = h
	b.mu.Unlock()
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-b.stop:
				return
			case <-t.C:
				b.sweep(time.Now())
			}
		}
	}()
	return nil
}

func (b *MemoryBroker) sweep(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for u, m := range b.members {
		if now.After(m.expires) {
			b.dropUserLocked(u, m)
		}
	}
}

func (b *MemoryBroker) dropUserLocked(user string, m *memMember) {
	for room := range m.rooms {
		b.unindexLocked(room, user)
	}
	delete(b.members, user)
}

func (b *MemoryBroker) unindexLocked(room, user string) {
	if set := b.rooms[room]; set != nil {
		delete(set, user)
		if len(set) == 0 {
			delete(b.rooms, room)
		}
	}
}

// Publish appends and delivers synchronously under the broker's lock, which gives the one total order.
func (b *MemoryBroker) Publish(ctx context.Context, data []byte) (Position, error) {
	if err := ctx.Err(); err != nil {
		return Position{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Position{}, ErrBrokerClosed
	}
	b.head++
	m := Message{Pos: Position{Offset: b.head, Epoch: b.epoch}, Time: time.Now().Truncate(time.Millisecond), Data: data}
	b.keepLocked(m)
	if b.h != nil {
		b.h.HandleMessage(m)
	}
	return m.Pos, nil
}

// keepLocked adds m (offset b.head) to the history, first dropping the oldest records that are beyond the
// history's age, count or byte budget. Dropped slots are cleared at once, so their data can be collected. A record
// larger than the whole budget leaves the history empty (the log stays contiguous: nothing before it is kept).
func (b *MemoryBroker) keepLocked(m Message) {
	size := int64(len(m.Data)) + messageOverhead
	cutoff := m.Time.Add(-b.cfg.HistoryTTL)
	for b.n > 0 {
		slot := &b.ring[(b.head-1-uint64(b.n))%uint64(len(b.ring))] // the oldest: offset head-n
		why := -1
		switch {
		case slot.Time.Before(cutoff):
			why = evictAge
		case b.n == len(b.ring):
			why = evictCount
		case b.bytes+size > b.cfg.HistoryMaxBytes:
			why = evictBytes
		}
		if why < 0 {
			break
		}
		b.bytes -= int64(len(slot.Data)) + messageOverhead
		*slot = Message{}
		b.n--
		b.evicted[why]++
	}
	if size > b.cfg.HistoryMaxBytes {
		b.evicted[evictBytes]++
		return
	}
	b.ring[(b.head-1)%uint64(len(b.ring))] = m
	b.n++
	b.bytes += size
}

func (b *MemoryBroker) historyStats() historyStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return historyStats{records: int64(b.n), bytes: b.bytes, evicted: b.evicted}
}

// Reset starts a new epoch with an empty log and tells the handler (see Broker).
func (b *MemoryBroker) Reset(ctx context.Context) (Position, error) {
	if err := ctx.Err(); err != nil {
		return Position{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Position{}, ErrBrokerClosed
	}
	b.evicted[evictGap] += uint64(b.n)
	b.epoch, b.head, b.n, b.bytes = newEpoch(), 0, 0, 0
	clear(b.ring)
	p := Position{Epoch: b.epoch}
	if b.h != nil {
		b.h.HandleGap(p)
	}
	return p, nil
}

func (b *MemoryBroker) History(ctx context.Context, after Position, limit int) ([]Message, Position, error) {
	if err := ctx.Err(); err != nil {
		return nil, Position{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	head := Position{Offset: b.head, Epoch: b.epoch}
	if after.Epoch != b.epoch || after.Offset > b.head {
		return nil, head, ErrHistoryUnavailable
	}
	oldest := b.head - uint64(b.n) + 1
	if after.Offset+1 < oldest {
		return nil, head, ErrHistoryUnavailable
	}
	var out []Message
	cutoff := time.Now().Add(-b.cfg.HistoryTTL)
	for off := after.Offset + 1; off <= b.head && (limit <= 0 || len(out) < limit); off++ {
		m := b.ring[(off-1)%uint64(len(b.ring))]
		if len(out) == 0 && m.Time.Before(cutoff) {
			return nil, head, ErrHistoryUnavailable
		}
		out = append(out, m)
	}
	return out, head, nil
}

func (b *MemoryBroker) Head(ctx context.Context) (Position, error) {
	if err := ctx.Err(); err != nil {
		return Position{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return Position{Offset: b.head, Epoch: b.epoch}, nil
}

func (b *MemoryBroker) notifyLocked(c MembershipChange) {
	if b.h != nil {
		b.h.HandleMembership(c)
	}
}

// liveLocked returns the user's membership, dropping it first if it has expired.
func (b *MemoryBroker) liveLocked(user string, now time.Time) *memMember {
	m := b.members[user]
	if m != nil && now.After(m.expires) {
		b.dropUserLocked(user, m)
		return nil
	}
	return m
}

func (b *MemoryBroker) Join(ctx context.Context, room, user string, maxRooms int, ttl time.Duration) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	m := b.liveLocked(user, now)
	if m == nil {
		m = &memMember{rooms: map[string]uint64{}}
		b.members[user] = m
	}
	if exp := now.Add(ttl); exp.After(m.expires) {
		m.expires = exp
	}
	off, ok := m.rooms[room]
	if ok {
		return off, nil
	}
	if maxRooms > 0 && len(m.rooms) >= maxRooms {
		oldest, first := "", true
		for r, o := range m.rooms {
			if first || o < m.rooms[oldest] || (o == m.rooms[oldest] && r < oldest) {
				oldest, first = r, false
			}
		}
		delete(m.rooms, oldest)
		b.unindexLocked(oldest, user)
		b.notifyLocked(MembershipChange{Op: OpLeave, Room: oldest, User: user})
	}
	off = b.head
	m.rooms[room] = off
	if b.rooms[room] == nil {
		b.rooms[room] = map[string]bool{}
	}
	b.rooms[room][user] = true
	b.notifyLocked(MembershipChange{Op: OpJoin, Room: room, User: user, Offset: off})
	return off, nil
}

func (b *MemoryBroker) Leave(ctx context.Context, room, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if m := b.members[user]; m != nil {
		delete(m.rooms, room)
		if len(m.rooms) == 0 {
			delete(b.members, user)
		}
	}
	b.unindexLocked(room, user)
	b.notifyLocked(MembershipChange{Op: OpLeave, Room: room, User: user})
	return nil
}

func (b *MemoryBroker) LeaveAll(ctx context.Context, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if m := b.members[user]; m != nil {
		b.dropUserLocked(user, m)
	}
	b.notifyLocked(MembershipChange{Op: OpLeaveAll, User: user})
	return nil
}

func (b *MemoryBroker) CloseRoom(ctx context.Context, room string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for user := range b.rooms[room] {
		if m := b.members[user]; m != nil {
			delete(m.rooms, room)
			if len(m.rooms) == 0 {
				delete(b.members, user)
			}
		}
	}
	delete(b.rooms, room)
	b.notifyLocked(MembershipChange{Op: OpCloseRoom, Room: room})
	return nil
}

func (b *MemoryBroker) Rooms(ctx context.Context, user string, ttl time.Duration) (map[string]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	m := b.liveLocked(user, now)
	out := map[string]uint64{}
	if m == nil {
		return out, nil
	}
	if exp := now.Add(ttl); exp.After(m.expires) {
		m.expires = exp
	}
	for r, o := range m.rooms {
		out[r] = o
	}
	return out, nil
}

func (b *MemoryBroker) Touch(ctx context.Context, users []string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	for _, u := range users {
		if m := b.liveLocked(u, now); m != nil {
			m.expires = now.Add(ttl)
		}
	}
	return nil
}

func (b *MemoryBroker) Ready(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrBrokerClosed
	}
	return ctx.Err()
}

func (b *MemoryBroker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	return nil
}
