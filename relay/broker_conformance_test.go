package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// recorder is a BrokerHandler that keeps what it was given.
type recorder struct {
	mu      sync.Mutex
	msgs    []Message
	changes []MembershipChange
	gaps    []Position
}

func (r *recorder) HandleMessage(m Message) { r.mu.Lock(); r.msgs = append(r.msgs, m); r.mu.Unlock() }
func (r *recorder) HandleMembership(c MembershipChange) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
}
func (r *recorder) HandleGap(next Position) {
	r.mu.Lock()
	r.gaps = append(r.gaps, next)
	r.mu.Unlock()
}
func (r *recorder) gapsSeen() []Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Position(nil), r.gaps...)
}
func (r *recorder) snapshot() ([]Message, []MembershipChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...), append([]MembershipChange(nil), r.changes...)
}

type brokerFactory func(t *testing.T, historySize int) Broker

// testRedisPrefix returns a fresh key prefix and deletes its keys when the test ends.
func testRedisPrefix(t *testing.T, url string) string {
	t.Helper()
	prefix := "relaytest:" + testenv.RandomHex(6) + ":"
	t.Cleanup(func() {
		opt, err := redis.ParseURL(url)
		if err != nil {
			return
		}
		c := redis.NewClient(opt)
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return prefix
}

func newRedisTestBroker(t *testing.T, url, prefix string, historySize int) *RedisBroker {
	t.Helper()
	b, err := NewRedisBrokerFromURL(url, RedisBrokerConfig{Prefix: prefix, HistorySize: historySize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func brokerFactories(t *testing.T) map[string]brokerFactory {
	return map[string]brokerFactory{
		"memory": func(t *testing.T, n int) Broker {
			b := NewMemoryBroker(MemoryBrokerConfig{HistorySize: n})
			t.Cleanup(func() { b.Close() })
			return b
		},
		"redis": func(t *testing.T, n int) Broker {
			url := testenv.RedisURL(t)
			return newRedisTestBroker(t, url, testRedisPrefix(t, url), n)
		},
		// A real three-master Redis Cluster: every script's keys must share a slot, so the prefix carries one
		// hash tag, as cmd/suparelay's does.
		"redis-cluster": func(t *testing.T, n int) Broker {
			opts := &redis.ClusterOptions{Addrs: testenv.RedisClusterAddrs(t)}
			prefix := "relaytest:" + testenv.RandomHex(6) + ":{relay}:"
			t.Cleanup(func() { // after the broker's Close, which closes its own client
				c := redis.NewClusterClient(opts)
				testenv.DeleteRedisKeys(context.Background(), c, prefix+"*")
				_ = c.Close()
			})
			b := NewRedisBroker(redis.NewClusterClient(opts), RedisBrokerConfig{Prefix: prefix, HistorySize: n})
			t.Cleanup(func() { b.Close() })
			return b
		},
	}
}

func TestBrokerConformance(t *testing.T) {
	t.Parallel()
	for name, factory := range brokerFactories(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("log", func(t *testing.T) { t.Parallel(); conformLog(t, factory) })
			t.Run("empty", func(t *testing.T) { t.Parallel(); conformEmptyLog(t, factory) })
			t.Run("trim", func(t *testing.T) { t.Parallel(); conformTrim(t, factory) })
			t.Run("order", func(t *testing.T) { t.Parallel(); conformOrder(t, factory) })
			t.Run("membership", func(t *testing.T) { t.Parallel(); conformMembership(t, factory) })
			t.Run("ttl", func(t *testing.T) { t.Parallel(); conformTTL(t, factory) })
			t.Run("reset", func(t *testing.T) { t.Parallel(); conformReset(t, factory) })
			t.Run("streams", func(t *testing.T) { t.Parallel(); conformStreams(t, factory) })
			t.Run("stream-expiry", func(t *testing.T) { t.Parallel(); conformStreamExpiry(t, factory) })
		})
	}
}

func subscribe(t *testing.T, b Broker) *recorder {
	t.Helper()
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := b.Subscribe(ctx, rec); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	return rec
}

func conformLog(t *testing.T, factory brokerFactory) {
	ctx := context.Background()
	b := factory(t, 100)
	rec := subscribe(t, b)
	var pos []Position
	for i := 1; i <= 3; i++ {
		p, err := b.Publish(ctx, []byte(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		pos = append(pos, p)
	}
	for i, p := range pos {
		if p.Offset != pos[0].Offset+uint64(i) || p.Epoch != pos[0].Epoch || p.Epoch == "" {
			t.Fatalf("positions %v: want consecutive offsets in one epoch", pos)
		}
	}
	head, err := b.Head(ctx)
	if err != nil || head != pos[2] {
		t.Fatalf("head %v %v, want %v", head, err, pos[2])
	}
	msgs, h2, err := b.History(ctx, pos[0], 0)
	if err != nil || h2 != head || len(msgs) != 2 || string(msgs[0].Data) != `{"n":2}` || msgs[1].Pos != pos[2] {
		t.Fatalf("history after first: %v %v %v", msgs, h2, err)
	}
	if msgs, _, err := b.History(ctx, pos[0], 1); err != nil || len(msgs) != 1 || msgs[0].Pos != pos[1] {
		t.Fatalf("history limit 1: %v %v", msgs, err)
	}
	if msgs, _, err := b.History(ctx, head, 10); err != nil || len(msgs) != 0 {
		t.Fatalf("history at head: %v %v", msgs, err)
	}
	if _, _, err := b.History(ctx, Position{Epoch: "otherepoch", Offset: 1}, 10); !errors.Is(err, ErrHistoryUnavailable) {
		t.Fatalf("other epoch: %v, want ErrHistoryUnavailable", err)
	}
	waitFor(t, func() bool { m, _ := rec.snapshot(); return len(m) >= 3 })
	got, _ := rec.snapshot()
	for i := range pos {
		if got[i].Pos != pos[i] || string(got[i].Data) != fmt.Sprintf(`{"n":%d}`, i+1) {
			t.Fatalf("delivered %d = %v, want %v", i, got[i], pos[i])
		}
	}
}

// conformEmptyLog: an empty log already has an epoch, and a position taken on it resumes the first records.
func conformEmptyLog(t *testing.T, factory brokerFactory) {
	ctx := context.Background()
	b := factory(t, 100)
	subscribe(t, b)
	head, err := b.Head(ctx)
	if err != nil || head.Epoch == "" || head.Offset != 0 {
		t.Fatalf("head of an empty log %v %v, want an epoch and offset 0", head, err)
	}
	p, err := b.Publish(ctx, []byte(`{"n":1}`))
	if err != nil || p.Epoch != head.Epoch || p.Offset != 1 {
		t.Fatalf("first record at %v %v, want %s-1", p, err, head.Epoch)
	}
	msgs, _, err := b.History(ctx, head, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Pos != p {
		t.Fatalf("history from the empty log's position: %v %v", msgs, err)
	}
}

func conformTrim(t *testing.T, factory brokerFactory) {
	ctx := context.Background()
	b := factory(t, 3)
	subscribe(t, b)
	var pos []Position
	for i := 0; i < 5; i++ {
		p, err := b.Publish(ctx, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		pos = append(pos, p)
	}
	if _, _, err := b.History(ctx, pos[0], 10); !errors.Is(err, ErrHistoryUnavailable) {
		t.Fatalf("trimmed history: %v, want ErrHistoryUnavailable", err)
	}
	msgs, _, err := b.History(ctx, pos[1], 10)
	if err != nil || len(msgs) != 3 || msgs[0].Pos != pos[2] {
		t.Fatalf("history within the kept records: %v %v", msgs, err)
	}
}

func conformOrder(t *testing.T, factory brokerFactory) {
	ctx := context.Background()
	b := factory(t, 1000)
	rec := subscribe(t, b)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := b.Publish(ctx, []byte(`{}`)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, func() bool { m, _ := rec.snapshot(); return len(m) >= 200 })
	msgs, _ := rec.snapshot()
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Pos.Offset != msgs[i-1].Pos.Offset+1 {
			t.Fatalf("delivery %d: offset %d after %d", i, msgs[i].Pos.Offset, msgs[i-1].Pos.Offset)
		}
	}
}

func conformMembership(t *testing.T, factory brokerFactory) {
	ctx := context.Background()
	b := factory(t, 100)
	rec := subscribe(t, b)
	ttl := time.Hour
	if _, err := b.Publish(ctx, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	head, _ := b.Head(ctx)
	off, err := b.Join(ctx, "r1", "u", 2, ttl)
	if err != nil || off != head.Offset {
		t.Fatalf("join: %d %v, want offset %d", off, err, head.Offset)
	}
	if _, err := b.Publish(ctx, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if again, err := b.Join(ctx, "r1", "u", 2, ttl); err != nil || again != off {
		t.Fatalf("re-join: %d %v, want original offset %d", again, err, off)
	}
	b.Join(ctx, "r2", "u", 2, ttl)
	b.Join(ctx, "r2", "v", 2, ttl)
	b.Join(ctx, "r3", "u", 2, ttl) // over the cap: r1 (oldest) goes
	rooms, err := b.Rooms(ctx, "u", ttl)
	if err != nil || len(rooms) != 2 || rooms["r2"] == 0 && rooms["r3"] == 0 {
		t.Fatalf("rooms after cap: %v %v", rooms, err)
	}
	if _, ok := rooms["r1"]; ok {
		t.Fatalf("oldest room kept: %v", rooms)
	}
	if err := b.Leave(ctx, "r3", "u"); err != nil {
		t.Fatal(err)
	}
	if rooms, _ := b.Rooms(ctx, "u", ttl); len(rooms) != 1 {
		t.Fatalf("after leave: %v", rooms)
	}
	if err := b.CloseRoom(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"u", "v"} {
		if rooms, _ := b.Rooms(ctx, u, ttl); len(rooms) != 0 {
			t.Fatalf("%s after close: %v", u, rooms)
		}
	}
	b.Join(ctx, "r4", "u", 2, ttl)
	if err := b.LeaveAll(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if rooms, _ := b.Rooms(ctx, "u", ttl); len(rooms) != 0 {
		t.Fatalf("after leave all: %v", rooms)
	}
	want := []MembershipChange{
		{Op: OpJoin, Room: "r1", User: "u", Offset: off},
		{Op: OpJoin, Room: "r2", User: "u", Offset: off + 1},
		{Op: OpJoin, Room: "r2", User: "v", Offset: off + 1},
		{Op: OpLeave, Room: "r1", User: "u"},
		{Op: OpJoin, Room: "r3", User: "u", Offset: off + 1},
		{Op: OpLeave, Room: "r3", User: "u"},
		{Op: OpCloseRoom, Room: "r2"},
		{Op: OpJoin, Room: "r4", User: "u", Offset: off + 1},
		{Op: OpLeaveAll, User: "u"},
	}
	waitFor(t, func() bool { _, c := rec.snapshot(); return len(c) >= len(want) })
	_, got := rec.snapshot()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("announcement %d = %+v, want %+v (all: %+v)", i, got[i], want[i], got)
		}
	}
}

func conformTTL(t *testing.T, factory brokerFactory) {
	ctx := context.Background()
	b := factory(t, 100)
	subscribe(t, b)
	short := 2 * time.Second // long enough that the Touch below surely comes first
	b.Join(ctx, "r", "expires", 10, short)
	b.Join(ctx, "r", "kept", 10, short)
	if err := b.Touch(ctx, []string{"kept", "nobody"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { r, _ := b.Rooms(ctx, "expires", 0); return len(r) == 0 })
	if r, _ := b.Rooms(ctx, "kept", 0); len(r) != 1 {
		t.Fatalf("touched membership expired: %v", r)
	}
}

// conformReset: Reset starts a new, empty epoch; the old positions cannot be resumed; subscribers hear of the gap
// before any record of the new epoch.
func conformReset(t *testing.T, factory brokerFactory) {
	ctx := context.Background()
	b := factory(t, 100)
	rec := subscribe(t, b)
	old, err := b.Publish(ctx, []byte(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Reset(ctx)
	if err != nil || p.Epoch == "" || p.Epoch == old.Epoch || p.Offset != 0 {
		t.Fatalf("reset: %v %v (old %v)", p, err, old)
	}
	if head, err := b.Head(ctx); err != nil || head != p {
		t.Fatalf("head after reset: %v %v, want %v", head, err, p)
	}
	if _, _, err := b.History(ctx, old, 10); !errors.Is(err, ErrHistoryUnavailable) {
		t.Fatalf("history of the old epoch: %v, want ErrHistoryUnavailable", err)
	}
	next, err := b.Publish(ctx, []byte(`{"n":2}`))
	if err != nil || next.Epoch != p.Epoch || next.Offset != 1 {
		t.Fatalf("first record after reset: %v %v", next, err)
	}
	waitFor(t, func() bool {
		msgs, _ := rec.snapshot()
		return len(msgs) == 2 && len(rec.gapsSeen()) == 1
	})
	if g := rec.gapsSeen(); g[0] != p {
		t.Fatalf("gap %v, want %v", g[0], p)
	}
}
