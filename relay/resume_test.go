package relay

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// isReloadHint reports whether ev is the reload hint for room ("" for the conversation list's): NEW_MESSAGE with
// shouldReloadMessages, the room as conversation_id, and no id line (it is not a log record).
func isReloadHint(ev sseEvent, room string) bool {
	var env struct {
		Type string `json:"type"`
		Data struct {
			Message struct {
				ID             *string `json:"id"`
				ConversationID string  `json:"conversation_id"`
			} `json:"message"`
			ShouldReloadMessages bool `json:"shouldReloadMessages"`
		} `json:"data"`
	}
	if ev.Event != TypeNewMessage || ev.ID != "" || json.Unmarshal([]byte(ev.Data), &env) != nil {
		return false
	}
	return env.Type == TypeNewMessage && env.Data.ShouldReloadMessages && env.Data.Message.ID == nil &&
		env.Data.Message.ConversationID == room
}

// resumeBrokers are the brokers the resume cases run on: memory, and the stack's Redis (skipped without it).
func resumeBrokers(t *testing.T) map[string]func(t *testing.T) (*Hub, Broker) {
	return map[string]func(t *testing.T) (*Hub, Broker){
		"memory": func(t *testing.T) (*Hub, Broker) {
			b := NewMemoryBroker(MemoryBrokerConfig{})
			t.Cleanup(func() { b.Close() })
			return newTestHub(t, b, HubConfig{}), b
		},
		"redis": func(t *testing.T) (*Hub, Broker) {
			url := testenv.RedisURL(t)
			h := redisHub(t, url, testRedisPrefix(t, url))
			return h, h.b
		},
	}
}

// expectLive publishes n room events and checks that c receives each of them, in order, with ids.
func expectLive(t *testing.T, h *Hub, c *sseClient, room string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		mustPublish(t, h, room, textEvent("E", "live"+strconv.Itoa(i)), PublishOptions{})
	}
	marker(t, h, "u", "live-end")
	got := c.until(t, "live-end")
	if len(got) != n {
		t.Fatalf("received %d of %d live events: %v", len(got), n, got)
	}
	for i, ev := range got {
		if !strings.Contains(ev.Data, `"live`+strconv.Itoa(i)+`"`) || ev.ID == "" {
			t.Fatalf("live event %d = %v", i, ev)
		}
	}
}

// TestResumeCannotLie: a Last-Event-ID that cannot be resumed (past the head, another epoch, an empty log's "-0",
// older than history, or not an id at all) gets CONNECTED with the current id, a reload hint for each joined room,
// and then every live event: never a silent gap. On both brokers.
func TestResumeCannotLie(t *testing.T) {
	t.Parallel()
	for name, newHub := range resumeBrokers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h, b := newHub(t)
			srv := testServer(t, h)
			c := dial(t, srv.URL, "u", "")
			c.next(t)
			mustJoin(t, h, "r", "u")
			mustPublish(t, h, "r", textEvent("E", "seen"), PublishOptions{})
			seen := c.next(t)
			c.Close()
			waitFor(t, func() bool { return h.Streams() == 0 })
			cases := map[string]func(head Position) string{
				"past_head":     func(head Position) string { return formatID(Position{Epoch: head.Epoch, Offset: head.Offset + 5}) },
				"unknown_epoch": func(head Position) string { return "zzzzzz-" + strconv.FormatUint(head.Offset, 10) },
				"empty_log":     func(Position) string { return "-0" },
				"malformed":     func(Position) string { return "not an id" },
			}
			for why, idFor := range cases {
				head, err := b.Head(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				lastID := idFor(head)
				c := dial(t, srv.URL, "u", lastID)
				h.mu.Lock()
				current := formatID(h.pos)
				h.mu.Unlock()
				conn := c.next(t)
				if conn.Event != TypeConnected || conn.ID != current || conn.ID == lastID {
					t.Fatalf("%s: CONNECTED %v, want the current id %s", why, conn, current)
				}
				if hint := c.next(t); !isReloadHint(hint, "r") {
					t.Fatalf("%s: after CONNECTED %v, want a reload hint for r", why, hint)
				}
				if hint := c.next(t); !isReloadHint(hint, "") {
					t.Fatalf("%s: %v, want the conversation list's reload hint", why, hint)
				}
				expectLive(t, h, c, "r", 3) // the case: 0 of 3 live events arrived after a past-head id
				c.Close()
				waitFor(t, func() bool { return h.Streams() == 0 })
				if got := counterValue(t, h.m.resumes.WithLabelValues(why)); got != 1 {
					t.Errorf("relay_resumes_total{result=%q} = %v, want 1", why, got)
				}
			}
			// The client's own last id still resumes, with CONNECTED's own id, not the client's.
			c = dial(t, srv.URL, "u", seen.ID)
			if conn := c.next(t); conn.ID != seen.ID+".1" {
				t.Fatalf("resume from %s: CONNECTED id %q, want %s.1", seen.ID, conn.ID, seen.ID)
			}
			marker(t, h, "u", "fin")
			got := c.until(t, "fin")
			if len(got) != 4*len(cases) { // per case: 3 room events and a marker
				t.Fatalf("resumed %d events, want the %d published since", len(got), 4*len(cases))
			}
		})
	}
}

// TestResumeTrimmedTells: a position older than history is told (current id, reload hint), not skipped silently.
func TestResumeTrimmedTells(t *testing.T) {
	t.Parallel()
	b := NewMemoryBroker(MemoryBrokerConfig{HistorySize: 4})
	h := newTestHub(t, b, HubConfig{HistorySize: 4})
	srv := testServer(t, h)
	mustJoin(t, h, "r", "u")
	for i := 0; i < 10; i++ {
		mustPublish(t, h, "r", textEvent("E", "old"), PublishOptions{})
	}
	c := dial(t, srv.URL, "u", b.epoch+"-2")
	if conn := c.next(t); conn.ID != b.epoch+"-10" {
		t.Fatalf("CONNECTED %v, want the current id", conn)
	}
	for _, room := range []string{"r", ""} {
		if hint := c.next(t); !isReloadHint(hint, room) {
			t.Fatalf("got %v, want a reload hint for %q", hint, room)
		}
	}
	expectLive(t, h, c, "r", 3)
	if got := counterValue(t, h.m.resumes.WithLabelValues(resumeTrimmed)); got != 1 {
		t.Fatalf("trimmed resumes %v", got)
	}
}

// TestResumeConnectedIDsNeverRepeat: reconnecting again and again without events in between hands out a new
// CONNECTED id each time, each resuming the same position.
func TestResumeConnectedIDsNeverRepeat(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{})
	srv := testServer(t, h)
	c := dial(t, srv.URL, "u", "")
	id := c.next(t).ID
	seen := map[string]bool{id: true}
	for i := 0; i < 3; i++ {
		c.Close()
		c = dial(t, srv.URL, "u", id)
		conn := c.next(t)
		if seen[conn.ID] {
			t.Fatalf("CONNECTED id %s handed out twice", conn.ID)
		}
		seen[conn.ID] = true
		id = conn.ID
	}
	c.Close()
	if err := h.PublishToUser(context.Background(), "u", textEvent("E", "away")); err != nil {
		t.Fatal(err)
	}
	c = dial(t, srv.URL, "u", id)
	c.next(t)
	if ev := c.next(t); !strings.Contains(ev.Data, `"away"`) {
		t.Fatalf("resume from %s got %v, want the event sent while away", id, ev)
	}
}

// TestResumeBrandNewLog: on a log with no record yet, CONNECTED names a real position (never "-0"), so an event
// sent while the client was away is replayed on reconnect, by the same node and by a node started later.
func TestResumeBrandNewLog(t *testing.T) {
	t.Parallel()
	for name, newHub := range resumeBrokers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h, _ := newHub(t)
			srv := testServer(t, h)
			c := dial(t, srv.URL, "u", "")
			conn := c.next(t)
			if p, ok := parseID(conn.ID); !ok || p.Epoch == "" || p.Offset != 0 {
				t.Fatalf("CONNECTED on an empty log has id %q, want <epoch>-0", conn.ID)
			}
			c.Close()
			waitFor(t, func() bool { return h.Streams() == 0 })
			if err := h.PublishToUser(context.Background(), "u", textEvent("E", "away")); err != nil {
				t.Fatal(err)
			}
			check := func(h *Hub) {
				t.Helper()
				c := dial(t, testServer(t, h).URL, "u", conn.ID)
				if again := c.next(t); again.ID != conn.ID+".1" {
					t.Fatalf("CONNECTED %v, want id %s.1", again, conn.ID)
				}
				if ev := c.next(t); !strings.Contains(ev.Data, `"away"`) || !strings.HasSuffix(ev.ID, "-1") {
					t.Fatalf("got %v, want the event sent while away", ev)
				}
				c.Close()
			}
			check(h)
			if rb, ok := h.b.(*RedisBroker); ok { // a node started after the event: replay from Redis
				check(redisHub(t, testenv.RedisURL(t), rb.cfg.Prefix))
			}
		})
	}
}

// pausedBroker holds back deliveries to its handler until released: a node lagging behind the log.
type pausedBroker struct {
	*MemoryBroker
	mu      sync.Mutex
	h       BrokerHandler
	paused  bool
	pending []Message
}

func (p *pausedBroker) Subscribe(ctx context.Context, h BrokerHandler) error {
	p.h = h
	return p.MemoryBroker.Subscribe(ctx, p)
}
func (p *pausedBroker) HandleMembership(c MembershipChange) { p.h.HandleMembership(c) }
func (p *pausedBroker) HandleGap(next Position)             { p.h.HandleGap(next) }
func (p *pausedBroker) HandleMessage(m Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.pending = append(p.pending, m)
		return
	}
	p.h.HandleMessage(m)
}
func (p *pausedBroker) pause() { p.mu.Lock(); p.paused = true; p.mu.Unlock() }
func (p *pausedBroker) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	for _, m := range p.pending {
		p.h.HandleMessage(m)
	}
	p.pending = nil
}

// TestResumeAheadOfLaggingNode: a client that has seen a record this node has not processed yet is not "past the
// head" (the broker has it): it resumes, and the record is not sent to it twice.
func TestResumeAheadOfLaggingNode(t *testing.T) {
	t.Parallel()
	pb := &pausedBroker{MemoryBroker: NewMemoryBroker(MemoryBrokerConfig{})}
	h := newTestHub(t, pb, HubConfig{})
	srv := testServer(t, h)
	mustJoin(t, h, "r", "u")
	pb.pause()
	mustPublish(t, h, "r", textEvent("E", "already-seen"), PublishOptions{}) // the client saw it on another node
	c := dial(t, srv.URL, "u", pb.epoch+"-1")
	if conn := c.next(t); conn.ID != pb.epoch+"-1.1" {
		t.Fatalf("CONNECTED %v, want a resume of %s-1", conn, pb.epoch)
	}
	pb.release()
	mustPublish(t, h, "r", textEvent("E", "new"), PublishOptions{})
	marker(t, h, "u", "end")
	got := c.until(t, "end")
	if len(got) != 1 || !strings.Contains(got[0].Data, `"new"`) {
		t.Fatalf("got %v, want only the new event (no hint, no duplicate)", got)
	}
	if n := counterValue(t, h.m.resumes.WithLabelValues(resumeOK)); n != 1 {
		t.Fatalf("resumed %v", n)
	}
}

// TestRedisLogWentBack: Redis keeps its epoch but its head goes back (a restore from a snapshot). The node that
// had seen the higher offsets starts a new epoch at its next publish instead of reusing offsets, so a client with
// an id from before is told to reload and every later event reaches it.
func TestRedisLogWentBack(t *testing.T) {
	t.Parallel()
	url := testenv.RedisURL(t)
	prefix := testRedisPrefix(t, url)
	h := redisHub(t, url, prefix)
	srv := testServer(t, h)
	c := dial(t, srv.URL, "u", "")
	c.next(t)
	mustJoin(t, h, "r", "u")
	var last sseEvent
	for i := 0; i < 5; i++ {
		mustPublish(t, h, "r", textEvent("E", "before"), PublishOptions{})
		last = c.next(t)
	}
	c.Close()
	waitFor(t, func() bool { return h.Streams() == 0 })

	// The "restore": head back to 2, the list back to its first two records, epoch kept.
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Set(ctx, prefix+"head", 2, 0).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.LTrim(ctx, prefix+"log", 0, 1)

	mustPublish(t, h, "r", textEvent("E", "after-restore"), PublishOptions{}) // published while the client is away
	c = dial(t, srv.URL, "u", last.ID)
	conn := c.next(t)
	if p, _ := parseID(conn.ID); conn.ID == last.ID+".1" || p.Epoch == strings.SplitN(last.ID, "-", 2)[0] {
		t.Fatalf("CONNECTED %v after the log went back: want a new epoch's id", conn)
	}
	for _, room := range []string{"r", ""} {
		if hint := c.next(t); !isReloadHint(hint, room) {
			t.Fatalf("got %v, want a reload hint for %q", hint, room)
		}
	}
	expectLive(t, h, c, "r", 3)
}
