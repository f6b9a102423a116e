package relay

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// bigRecordSize is the size of the records the byte-budget tests publish: the 1 MiB, scaled down under
// the race detector (see raceEnabled); budgets are multiples of it.
var bigRecordSize = map[bool]int64{false: 1 << 20, true: 128 << 10}[raceEnabled]

// bigEvent is a NEW_MESSAGE-sized event of about n bytes (the 1 MB of metadata per send).
func bigEvent(n int) Event {
	return Event{Type: TypeNewMessage, Data: []byte(`{"message":{"metadata":"` + strings.Repeat("x", n) + `"},"shouldReloadMessages":true}`)}
}

func gatherHistory(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "relay_history_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			if c := m.GetCounter(); c != nil {
				out[key] = c.GetValue()
			} else {
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestHistoryByteBudget: 400 records of ~1 MB keep the node's ring and the broker's log under their byte budget
// (memory and Redis), the metrics say so, the newest records still resume, and a position whose records were
// evicted for bytes is told to reload.
func TestHistoryByteBudget(t *testing.T) {
	t.Parallel()
	budget := 8 * bigRecordSize
	for name, mk := range map[string]func(t *testing.T) Broker{
		"memory": func(t *testing.T) Broker {
			b := NewMemoryBroker(MemoryBrokerConfig{HistoryMaxBytes: budget})
			t.Cleanup(func() { b.Close() })
			return b
		},
		"redis": func(t *testing.T) Broker {
			url := testenv.RedisURL(t)
			b, err := NewRedisBrokerFromURL(url, RedisBrokerConfig{Prefix: testRedisPrefix(t, url), HistoryMaxBytes: budget})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			reg := prometheus.NewRegistry()
			h := NewHub(b, HubConfig{HistoryMaxBytes: budget}, nil, reg)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(func() { h.Shutdown(context.Background()); cancel() })
			if err := h.Start(ctx); err != nil {
				t.Fatal(err)
			}
			srv := testServer(t, h)
			c := dial(t, srv.URL, "u", "")
			first := c.next(t)
			c.Close()
			waitFor(t, func() bool { return h.Streams() == 0 })
			mustJoin(t, h, "r", "u")
			// Encoded once and appended through the broker: the Hub's own publish only adds JSON checks of the same
			// bytes, and the test is about what the history keeps.
			data, err := bigEvent(int(bigRecordSize)).normalize()
			if err != nil {
				t.Fatal(err)
			}
			enc, err := encodeRecord(wireRecord{K: "r", R: "r", T: TypeNewMessage, D: data})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 400; i++ {
				p, err := b.Publish(ctx, enc)
				if err != nil {
					t.Fatal(err)
				}
				if i%16 == 15 {
					// Let the node keep up: Redis cuts off a pub/sub subscriber more than 32 MB behind, and the
					// trimmed history could not fill that gap (the node would rightly drop its ring).
					waitFor(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.pos.Offset >= p.Offset })
				}
			}
			head, err := b.Head(ctx)
			if err != nil || head.Offset != 400 {
				t.Fatalf("head %v %v", head, err)
			}
			waitFor(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.pos == head })

			h.mu.Lock()
			nodeBytes, nodeRecords := h.ring.bytes, h.ring.n
			h.mu.Unlock()
			// A subscriber that falls behind 400 large records can be cut off by Redis (its pub/sub output buffer
			// limit); on reconnect the trimmed history cannot fill the gap, so the node rightly drops its ring
			// (HandleGap). Then only the budget is checked.
			gapped := counterValue(t, h.m.gaps) > 0
			if nodeBytes > budget || (!gapped && (nodeRecords == 0 || nodeRecords >= 400)) {
				t.Fatalf("node ring holds %d records, %d bytes; budget %d (gap: %v)", nodeRecords, nodeBytes, budget, gapped)
			}
			bs := b.(historyStater).historyStats()
			if bs.bytes > budget || bs.records == 0 || bs.records >= 400 || bs.evicted[evictBytes] == 0 {
				t.Fatalf("broker history %+v; budget %d", bs, budget)
			}
			if rb, ok := b.(*RedisBroker); ok { // what Redis really holds, not what the script says
				opt, _ := redis.ParseURL(testenv.RedisURL(t))
				rdb := redis.NewClient(opt)
				defer rdb.Close()
				items, err := rdb.LRange(ctx, rb.key("log"), 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				total := 0
				for _, it := range items {
					total += len(it)
				}
				if int64(total) > budget || int64(len(items)) != bs.records || int64(total) != bs.bytes {
					t.Fatalf("redis list: %d records, %d bytes; script said %+v", len(items), total, bs)
				}
			}
			m := gatherHistory(t, reg)
			for _, store := range []string{"node", "broker"} {
				if v := m["relay_history_bytes,store="+store]; v <= 0 || v > float64(budget) {
					t.Errorf("relay_history_bytes{store=%s} = %v", store, v)
				}
				if v := m["relay_history_evictions_total,reason=bytes,store="+store]; v < 300 {
					t.Errorf("relay_history_evictions_total{store=%s,reason=bytes} = %v", store, v)
				}
			}

			// The newest records still resume; the first position (its next records evicted) is told to reload.
			recent := formatID(Position{Epoch: head.Epoch, Offset: head.Offset - 2})
			c = dial(t, srv.URL, "u", recent)
			c.next(t)
			for i := 0; i < 2; i++ {
				if ev := c.next(t); ev.Event != TypeNewMessage || ev.ID == "" {
					t.Fatalf("resumed %v", ev)
				}
			}
			c.Close()
			c = dial(t, srv.URL, "u", first.ID)
			if conn := c.next(t); conn.ID != formatID(head) {
				t.Fatalf("CONNECTED %v, want the current id %s", conn, formatID(head))
			}
			for _, room := range []string{"r", ""} {
				if hint := c.next(t); !isReloadHint(hint, room) {
					t.Fatalf("got %v, want a reload hint for %q", hint, room)
				}
			}
		})
	}
}

// TestHistoryByteBudgetHeap (not parallel: it reads the process heap) is the abuse run on one node: 400
// sends of ~1 MB leave the live heap within the node's and the broker's budgets, not ~400 MB per copy.
func TestHistoryByteBudgetHeap(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's own allocations and slowness make a heap measurement meaningless")
	}
	const budget = 16 << 20
	b := NewMemoryBroker(MemoryBrokerConfig{HistoryMaxBytes: budget})
	defer b.Close()
	h := newTestHub(t, b, HubConfig{HistoryMaxBytes: budget})
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	ev := bigEvent(1 << 20)
	for i := 0; i < 400; i++ {
		mustPublish(t, h, "r", ev, PublishOptions{})
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grown := int64(ms.HeapAlloc) - int64(before)
	t.Logf("heap grew %d MiB after 400 records of 1 MiB (budgets: node %d MiB, broker %d MiB)", grown>>20, budget>>20, budget>>20)
	if grown > 3*budget { // the ring and the broker's log, each at most one budget, plus slack
		t.Fatalf("heap grew %d MiB, want under %d MiB", grown>>20, 3*budget>>20)
	}
	runtime.KeepAlive(h)
}
