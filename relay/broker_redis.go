package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisBrokerConfig configures a RedisBroker; zero fields take the defaults.
type RedisBrokerConfig struct {
	// Prefix starts every key and the channel name (default "relay:"). Put a {hash tag} in it for Redis Cluster.
	Prefix      string
	HistorySize int           // records kept in the log list (default DefaultHistorySize)
	HistoryTTL  time.Duration // records older than this are not served, and trimmed (default DefaultHistoryTTL)
	// HistoryMaxBytes bounds the bytes of the log list (default DefaultHistoryMaxBytes): the oldest records are
	// trimmed first. It counts the records' bytes, not Redis's own overhead per list entry (tens of bytes).
	HistoryMaxBytes int64
	// RoomIndexTTL bounds how long a room's reverse index (used only by CloseRoom) outlives its last join
	// (default 24h). Stale entries are harmless.
	RoomIndexTTL time.Duration
	Logger       *slog.Logger
}

// RedisBroker shares the event log, fan-out and room membership between nodes through one Redis: a capped list
// holds the log (history for resume on any node), one pub/sub channel carries records and membership changes to
// every node, a hash per user holds its rooms with the grace TTL, and Lua scripts make each change atomic.
//
// When Redis is down, Publish and the membership calls fail fast with ErrBrokerUnavailable (the Hub then delivers
// locally), Ready returns an error, and the subscription reconnects with capped exponential backoff; after it is
// back, records missed meanwhile are recovered from the list before live ones.
type RedisBroker struct {
	rdb   redis.UniversalClient
	own   bool
	cfg   RedisBrokerConfig
	log   *slog.Logger
	chann string

	healthy  atomic.Bool
	seenMu   sync.Mutex
	seen     Position // the newest position delivered to the handler (guarded by seenMu)
	statsMu  sync.Mutex
	stats    historyStats // the log's numbers as of this node's last publish (guarded by statsMu)
	closed   atomic.Bool
	cancel   context.CancelFunc
	done     chan struct{}
	closeErr error
}

var _ Broker = (*RedisBroker)(nil)

// NewRedisBrokerFromURL parses a redis:// URL and returns a broker that owns (and closes) its client. Timeouts are
// short on purpose: a chat POST must not hang on a dead Redis.
func NewRedisBrokerFromURL(url string, cfg RedisBrokerConfig) (*RedisBroker, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("relay: parse redis url: %w", err)
	}
	opt.DialTimeout = time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	opt.MaxRetries = 1
	b := NewRedisBroker(redis.NewClient(opt), cfg)
	b.own = true
	return b, nil
}

// NewRedisBroker uses an existing client (not closed by Close).
func NewRedisBroker(rdb redis.UniversalClient, cfg RedisBrokerConfig) *RedisBroker {
	if cfg.Prefix == "" {
		cfg.Prefix = "relay:"
	}
	if cfg.HistorySize <= 0 {
		cfg.HistorySize = DefaultHistorySize
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = DefaultHistoryTTL
	}
	if cfg.HistoryMaxBytes <= 0 {
		cfg.HistoryMaxBytes = DefaultHistoryMaxBytes
	}
	if cfg.RoomIndexTTL <= 0 {
		cfg.RoomIndexTTL = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &RedisBroker{rdb: rdb, cfg: cfg, log: cfg.Logger, chann: cfg.Prefix + "bus", done: make(chan struct{})}
}

// deliver hands m to the handler and remembers its position (see luaPublish for why).
func (b *RedisBroker) deliver(h BrokerHandler, last *Position, m Message) {
	b.setLast(last, m.Pos)
	h.HandleMessage(m)
}

// setLast moves the subscription's position to p.
func (b *RedisBroker) setLast(last *Position, p Position) {
	*last = p
	b.seenMu.Lock()
	b.seen = p
	b.seenMu.Unlock()
}

func (b *RedisBroker) lastSeen() Position {
	b.seenMu.Lock()
	defer b.seenMu.Unlock()
	return b.seen
}

func (b *RedisBroker) key(s string) string { return b.cfg.Prefix + s }
func (b *RedisBroker) logKeys() []string {
	return []string{b.key("epoch"), b.key("head"), b.key("log"), b.key("logbytes")}
}

// unavailable turns a Redis error into one wrapping ErrBrokerUnavailable (context errors pass through).
func (b *RedisBroker) unavailable(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrBrokerUnavailable, err)
}

// check fails fast while the subscription is known to be down, so callers do not wait on dial timeouts.
func (b *RedisBroker) check() error {
	if b.closed.Load() {
		return ErrBrokerClosed
	}
	if !b.healthy.Load() {
		return ErrBrokerUnavailable
	}
	return nil
}

// Subscribe starts the subscriber goroutine and waits for its first attempt.
func (b *RedisBroker) Subscribe(ctx context.Context, h BrokerHandler) error {
	if b.closed.Load() {
		return ErrBrokerClosed
	}
	ctx, b.cancel = context.WithCancel(ctx)
	first := make(chan error, 1)
	go b.run(ctx, h, first)
	select {
	case err := <-first:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run subscribes, recovers what was missed since the last seen position, then delivers live messages; on any
// error it marks the broker unhealthy and retries with backoff (100 ms doubling to 1 s: while it is unhealthy,
// publishes reach only the local node, so a long backoff after a short Redis restart would widen the gap).
func (b *RedisBroker) run(ctx context.Context, h BrokerHandler, first chan<- error) {
	defer close(b.done)
	backoff := 100 * time.Millisecond
	var last Position
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := b.session(ctx, h, &last, first)
		first = nil
		b.healthy.Store(false)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("relay: redis subscription lost; retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if err == nil {
			backoff = 100 * time.Millisecond
		} else if backoff *= 2; backoff > time.Second {
			backoff = time.Second
		}
	}
}

// session is one subscription's life. It returns nil only if it was healthy for a while (resets backoff).
func (b *RedisBroker) session(ctx context.Context, h BrokerHandler, last *Position, first chan<- error) error {
	ps := b.rdb.Subscribe(ctx)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { ps.Close() }) // a blocked receive does not watch ctx
	defer stop()
	report := func(err error) {
		if first != nil {
			first <- err
			first = nil
		}
	}
	if err := ps.Subscribe(ctx, b.chann); err != nil {
		report(b.unavailable(err))
		return err
	}
	if _, err := ps.ReceiveTimeout(ctx, 2*time.Second); err != nil { // the subscribe confirmation
		report(b.unavailable(err))
		return err
	}
	// Catch up: records published while we were away (or, on the first session, just learn the head).
	if last.Epoch == "" {
		head, err := b.head(ctx)
		if err != nil {
			report(b.unavailable(err))
			return err
		}
		b.setLast(last, head)
	} else if err := b.recover(ctx, h, last, 0); err != nil {
		report(b.unavailable(err))
		return err
	}
	b.healthy.Store(true)
	report(nil)
	started := time.Now()
	for {
		msg, err := ps.ReceiveTimeout(ctx, 30*time.Second)
		if err != nil {
			var to interface{ Timeout() bool }
			if errors.As(err, &to) && to.Timeout() {
				if perr := ps.Ping(ctx); perr == nil {
					continue
				}
			}
			if time.Since(started) > 10*time.Second {
				return nil
			}
			return err
		}
		m, ok := msg.(*redis.Message)
		if !ok {
			continue
		}
		if err := b.dispatch(ctx, h, last, m.Payload); err != nil {
			return err
		}
	}
}

// dispatch delivers one channel payload, filling a gap from history first when offsets jumped.
func (b *RedisBroker) dispatch(ctx context.Context, h BrokerHandler, last *Position, payload string) error {
	switch {
	case len(payload) > 0 && payload[0] == 'm':
		var c MembershipChange
		if err := json.Unmarshal([]byte(payload[1:]), &c); err != nil {
			b.log.Error("relay: bad membership message", "err", err)
			return nil
		}
		h.HandleMembership(c)
	case len(payload) > 0 && payload[0] == 'g':
		b.setLast(last, Position{Epoch: payload[1:]})
		h.HandleGap(*last)
	case len(payload) > 0 && payload[0] == 'e':
		m, err := parseRecord(payload)
		if err != nil {
			b.log.Error("relay: bad log record", "err", err)
			return nil
		}
		if last.Epoch != "" && m.Pos.Epoch != last.Epoch {
			// The log was replaced without a Reset announcement reaching us (a flushed or restarted Redis).
			b.setLast(last, Position{Epoch: m.Pos.Epoch, Offset: m.Pos.Offset - 1})
			h.HandleGap(*last)
		}
		if m.Pos.Epoch == last.Epoch {
			if m.Pos.Offset <= last.Offset {
				return nil // already delivered through recovery
			}
			if m.Pos.Offset > last.Offset+1 {
				if err := b.recover(ctx, h, last, m.Pos.Offset-1); err != nil && !errors.Is(err, ErrHistoryUnavailable) {
					return err
				}
			}
		}
		b.deliver(h, last, m)
	}
	return nil
}

// recover delivers records after *last up to `upto` (0 = head) from the list. When history cannot serve them
// (another epoch, trimmed, too old) the handler is told of the gap, and delivery goes on after it. A head below
// *last in the same epoch is a log that went back: the head call starts a new epoch then (luaHead), so no offset
// the handler has seen is ever reused for another record.
func (b *RedisBroker) recover(ctx context.Context, h BrokerHandler, last *Position, upto uint64) error {
	for {
		msgs, head, err := b.history(ctx, *last, 1000)
		if errors.Is(err, ErrHistoryUnavailable) {
			if head.Epoch == last.Epoch && head.Offset < last.Offset {
				if head, err = b.head(ctx); err != nil {
					return err
				}
				b.log.Warn("relay: redis log went back; started a new epoch", "seen", formatID(*last),
					"head", formatID(head))
			}
			next := head
			if upto != 0 && head.Epoch == last.Epoch {
				next.Offset = upto // the record that revealed the gap is delivered next
			}
			b.setLast(last, next)
			h.HandleGap(next)
			return nil
		}
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if upto != 0 && m.Pos.Offset > upto {
				return nil
			}
			b.deliver(h, last, m)
		}
		if len(msgs) == 0 || last.Offset >= head.Offset || (upto != 0 && last.Offset >= upto) {
			return nil
		}
	}
}

// parseRecord parses e<epoch>:<offset>:<ms>:<data>.
func parseRecord(s string) (Message, error) {
	var parts [3]string
	rest := s[1:]
	for i := range parts {
		j := strings.IndexByte(rest[:min(len(rest), 40)], ':')
		if j < 0 {
			return Message{}, errors.New("malformed record")
		}
		parts[i], rest = rest[:j], rest[j+1:]
	}
	off, err1 := strconv.ParseUint(parts[1], 10, 64)
	ms, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || parts[0] == "" {
		return Message{}, errors.New("malformed record header")
	}
	// The epoch is cloned: as a substring it would keep the whole payload alive for as long as the record's position
	// lives in the history, beside the copy in Data, which the history's byte budget does not count.
	return Message{Pos: Position{Offset: off, Epoch: strings.Clone(parts[0])}, Time: time.UnixMilli(ms), Data: []byte(rest)}, nil
}

func (b *RedisBroker) Publish(ctx context.Context, data []byte) (Position, error) {
	if err := b.check(); err != nil {
		return Position{}, err
	}
	seen := b.lastSeen()
	res, err := luaPublish.Run(ctx, b.rdb, b.logKeys(), newEpoch(), time.Now().UnixMilli(), data,
		b.cfg.HistorySize, b.cfg.HistoryTTL.Milliseconds(), b.chann, seen.Epoch, seen.Offset,
		b.cfg.HistoryMaxBytes).StringSlice()
	if err != nil {
		return Position{}, b.unavailable(err)
	}
	if len(res) < 7 {
		return Position{}, fmt.Errorf("%w: publish script answered %d values", ErrBrokerUnavailable, len(res))
	}
	off, _ := strconv.ParseUint(res[1], 10, 64)
	var n [5]int64
	for i := range n {
		n[i], _ = strconv.ParseInt(res[2+i], 10, 64)
	}
	b.statsMu.Lock()
	b.stats.records, b.stats.bytes = n[0], n[1]
	b.stats.evicted[evictCount] += uint64(n[2])
	b.stats.evicted[evictBytes] += uint64(n[3])
	b.stats.evicted[evictAge] += uint64(n[4])
	b.statsMu.Unlock()
	return Position{Offset: off, Epoch: res[0]}, nil
}

func (b *RedisBroker) historyStats() historyStats {
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	return b.stats
}

// Reset starts a new epoch and announces it on the channel (see Broker).
func (b *RedisBroker) Reset(ctx context.Context) (Position, error) {
	if err := b.check(); err != nil {
		return Position{}, err
	}
	epoch, err := luaReset.Run(ctx, b.rdb, b.logKeys(), newEpoch(), b.chann).Text()
	if err != nil {
		return Position{}, b.unavailable(err)
	}
	b.statsMu.Lock()
	b.stats.evicted[evictGap] += uint64(b.stats.records)
	b.stats.records, b.stats.bytes = 0, 0
	b.statsMu.Unlock()
	return Position{Epoch: epoch}, nil
}

func (b *RedisBroker) History(ctx context.Context, after Position, limit int) ([]Message, Position, error) {
	if err := b.check(); err != nil {
		return nil, Position{}, err
	}
	return b.history(ctx, after, limit)
}

func (b *RedisBroker) history(ctx context.Context, after Position, limit int) ([]Message, Position, error) {
	res, err := luaHistory.Run(ctx, b.rdb, b.logKeys(), after.Epoch, after.Offset, limit).StringSlice()
	if err != nil {
		return nil, Position{}, b.unavailable(err)
	}
	headOff, _ := strconv.ParseUint(res[1], 10, 64)
	head := Position{Offset: headOff, Epoch: res[0]}
	if res[2] != "OK" {
		return nil, head, ErrHistoryUnavailable
	}
	cutoff := time.Now().Add(-b.cfg.HistoryTTL)
	out := make([]Message, 0, len(res)-3)
	for i, s := range res[3:] {
		m, err := parseRecord(s)
		if err != nil {
			return nil, head, fmt.Errorf("relay: history: %w", err)
		}
		if i == 0 && m.Time.Before(cutoff) {
			return nil, head, ErrHistoryUnavailable
		}
		out = append(out, m)
	}
	return out, head, nil
}

func (b *RedisBroker) Head(ctx context.Context) (Position, error) {
	if err := b.check(); err != nil {
		return Position{}, err
	}
	return b.head(ctx)
}

func (b *RedisBroker) head(ctx context.Context) (Position, error) {
	seen := b.lastSeen()
	res, err := luaHead.Run(ctx, b.rdb, b.logKeys(), newEpoch(), seen.Epoch, seen.Offset).StringSlice()
	if err != nil {
		return Position{}, b.unavailable(err)
	}
	off, _ := strconv.ParseUint(res[1], 10, 64)
	return Position{Offset: off, Epoch: res[0]}, nil
}

func (b *RedisBroker) Join(ctx context.Context, room, user string, maxRooms int, ttl time.Duration) (uint64, error) {
	if err := b.check(); err != nil {
		return 0, err
	}
	s, err := luaJoin.Run(ctx, b.rdb, []string{b.key("u:" + user), b.key("r:" + room), b.key("head")},
		room, user, maxRooms, ttl.Milliseconds(), b.cfg.RoomIndexTTL.Milliseconds(), b.chann, b.cfg.Prefix).Text()
	if err != nil {
		return 0, b.unavailable(err)
	}
	off, _ := strconv.ParseUint(s, 10, 64)
	return off, nil
}

func (b *RedisBroker) Leave(ctx context.Context, room, user string) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.unavailable(luaLeave.Run(ctx, b.rdb, []string{b.key("u:" + user), b.key("r:" + room)},
		room, user, b.chann).Err())
}

func (b *RedisBroker) LeaveAll(ctx context.Context, user string) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.unavailable(luaLeaveAll.Run(ctx, b.rdb, []string{b.key("u:" + user)}, user, b.chann, b.cfg.Prefix).Err())
}

func (b *RedisBroker) CloseRoom(ctx context.Context, room string) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.unavailable(luaCloseRoom.Run(ctx, b.rdb, []string{b.key("r:" + room)}, room, b.chann, b.cfg.Prefix).Err())
}

func (b *RedisBroker) Rooms(ctx context.Context, user string, ttl time.Duration) (map[string]uint64, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	all, err := luaRooms.Run(ctx, b.rdb, []string{b.key("u:" + user)}, ttl.Milliseconds()).StringSlice()
	if err != nil {
		return nil, b.unavailable(err)
	}
	out := make(map[string]uint64, len(all)/2)
	for i := 0; i+1 < len(all); i += 2 {
		out[all[i]], _ = strconv.ParseUint(all[i+1], 10, 64)
	}
	return out, nil
}

// Touch pipelines one PEXPIRE per user (PEXPIRE on a missing key is a no-op, as wanted).
func (b *RedisBroker) Touch(ctx context.Context, users []string, ttl time.Duration) error {
	if err := b.check(); err != nil {
		return err
	}
	for len(users) > 0 {
		n := min(len(users), 1000)
		pipe := b.rdb.Pipeline()
		for _, u := range users[:n] {
			pipe.PExpire(ctx, b.key("u:"+u), ttl)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return b.unavailable(err)
		}
		users = users[n:]
	}
	return nil
}

func (b *RedisBroker) Ready(ctx context.Context) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.unavailable(b.rdb.Ping(ctx).Err())
}

// Close stops the subscriber and, if the broker created the client, closes it.
func (b *RedisBroker) Close() error {
	if b.closed.Swap(true) {
		return b.closeErr
	}
	if b.cancel != nil {
		b.cancel()
		<-b.done
	}
	if b.own {
		b.closeErr = b.rdb.Close()
	}
	return b.closeErr
}
