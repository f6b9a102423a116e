package relay

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var fixedNow = func() time.Time { return time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC) }

func TestWireFormatExact(t *testing.T) {
	t.Parallel()
	b := NewMemoryBroker(MemoryBrokerConfig{})
	h := newTestHub(t, b, HubConfig{Now: fixedNow})
	srv := testServer(t, h)
	c := dial(t, srv.URL, "u1", "")

	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache, no-transform",
		"Connection": "keep-alive", "X-Accel-Buffering": "no",
	} {
		if got := c.resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	epoch := b.epoch
	conn := c.next(t)
	wantConn := "event: CONNECTED\n" +
		`data: {"type":"CONNECTED","timestamp":"2025-01-01T12:00:00.000Z","data":{"userId":"u1","timestamp":"2025-01-01T12:00:00.000Z"}}` + "\n" +
		"id: " + epoch + "-0\nretry: 3000\n\n"
	if conn.Raw != wantConn {
		t.Fatalf("CONNECTED frame:\n got %q\nwant %q", conn.Raw, wantConn)
	}

	mustJoin(t, h, "9c2e", "u1")
	mustPublish(t, h, "9c2e", TypingStopEvent("6b1f", "9c2e"), PublishOptions{})
	got := c.next(t)
	// The contract's example (sse.md §2) followed by our id line.
	want := "event: USER_TYPING\n" +
		`data: {"type":"USER_TYPING","timestamp":"2025-01-01T12:00:00.000Z","data":{"userId":"6b1f","conversationId":"9c2e","isTyping":false}}` + "\n" +
		"id: " + epoch + "-1\n\n"
	if got.Raw != want {
		t.Fatalf("frame:\n got %q\nwant %q", got.Raw, want)
	}
}

func TestEventConstructorsPayloads(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ev   Event
		typ  string
		data string
	}{
		{NewMessageEvent(json.RawMessage(`{"id":"m1","encrypted_content":"\\x00<b>"}`)), "NEW_MESSAGE",
			`{"message":{"id":"m1","encrypted_content":"\\x00<b>"},"shouldReloadMessages":true}`},
		{NewMessageShortEvent("m1", "c1"), "NEW_MESSAGE",
			`{"message":{"id":"m1","conversation_id":"c1","has_attachments":true},"shouldReloadMessages":true}`},
		{TypingStartEvent("u", "alice", "Alice Demo", "c"), "USER_TYPING",
			`{"userId":"u","username":"alice","displayName":"Alice Demo","conversationId":"c","isTyping":true}`},
		{TypingStopEvent("u", "c"), "USER_TYPING", `{"userId":"u","conversationId":"c","isTyping":false}`},
		{ConversationCreatedEvent(json.RawMessage(`{"id":"c"}`)), "CONVERSATION_CREATED", `{"conversation":{"id":"c"}}`},
		{MessageReadEvent("u", "c", "m"), "MESSAGE_READ", `{"userId":"u","conversationId":"c","messageId":"m"}`},
		{PresenceEvent("u", true), "USER_ONLINE", `{"userId":"u"}`},
	}
	for _, c := range cases {
		if c.ev.Type != c.typ || string(c.ev.Data) != c.data {
			t.Errorf("got %s %s, want %s %s", c.ev.Type, c.ev.Data, c.typ, c.data)
		}
	}
}

func TestEventValidation(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{})
	for _, typ := range []string{"", "A\nB", "A\rB", "A B", `A"B`, "A:B", "A\x00"} {
		err := h.PublishToUser(context.Background(), "u", Event{Type: typ, Data: []byte(`{}`)})
		if err == nil {
			t.Errorf("type %q accepted", typ)
		}
	}
	if err := h.PublishToUser(context.Background(), "u", Event{Type: "X", Data: []byte(`{"a":`)}); err == nil {
		t.Error("invalid JSON accepted")
	}
	for _, id := range []string{"abc-1\n", "ABC-1", "abc-x", "abc", "a\x00b-1"} {
		if _, ok := parseID(id); ok {
			t.Errorf("id %q parsed", id)
		}
	}
	// Multi-line JSON is compacted onto one line.
	srv := testServer(t, h)
	c := dial(t, srv.URL, "u", "")
	c.next(t)
	if err := h.PublishToUser(context.Background(), "u", Event{Type: "X", Data: []byte("{\n  \"a\": \"x y\"\n}")}); err != nil {
		t.Fatal(err)
	}
	if got, want := c.next(t).Data, `{"a":"x y"}`; !strings.Contains(got, `"data":`+want+`}`) {
		t.Errorf("data line %s, want payload %s", got, want)
	}
}

func TestConnectedFirstAndFlushedAtOnce(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{})
	srv := testServer(t, h)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-Test-User", "u1")
	resp, err := isolatedClient.Do(req) // returns when the headers arrive: they were flushed
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len("event: CONNECTED\n"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil { // no event published: only CONNECTED can arrive
		t.Fatal(err)
	}
	if string(buf) != "event: CONNECTED\n" {
		t.Fatalf("first bytes %q", buf)
	}
}

func TestTypingExcludesSenderNewMessageIncludes(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{})
	srv := testServer(t, h)
	alice, bob, carol := dial(t, srv.URL, "alice", ""), dial(t, srv.URL, "bob", ""), dial(t, srv.URL, "carol", "")
	alice2 := dial(t, srv.URL, "alice", "")
	for _, c := range []*sseClient{alice, bob, carol, alice2} {
		c.next(t)
	}
	mustJoin(t, h, "room", "alice")
	mustJoin(t, h, "room", "bob")
	// carol is a participant but has not opened the conversation (not joined).
	parts := []string{"alice", "bob", "carol"}
	mustPublish(t, h, "room", TypingStartEvent("alice", "alice", "Alice", "room"), PublishOptions{ExcludeUser: "alice", Participants: parts, MembersOnly: true})
	mustPublish(t, h, "room", NewMessageEvent(json.RawMessage(`{"id":"m1"}`)), PublishOptions{Participants: parts})
	for _, u := range []string{"alice", "bob", "carol"} {
		marker(t, h, u, "end")
	}
	types := func(evs []sseEvent) string {
		var s []string
		for _, e := range evs {
			s = append(s, e.Event)
		}
		return strings.Join(s, ",")
	}
	for name, c := range map[string]*sseClient{"alice": alice, "alice2": alice2} {
		if got := types(c.until(t, "end")); got != "NEW_MESSAGE" {
			t.Errorf("%s got %q, want NEW_MESSAGE only (sender included, typing excluded)", name, got)
		}
	}
	if got := types(bob.until(t, "end")); got != "USER_TYPING,NEW_MESSAGE" {
		t.Errorf("bob got %q", got)
	}
	if got := types(carol.until(t, "end")); got != "NEW_MESSAGE" {
		t.Errorf("carol (participant, not joined) got %q, want NEW_MESSAGE only", got)
	}
	// A member no longer among the active participants receives nothing.
	mustPublish(t, h, "room", NewMessageEvent(json.RawMessage(`{"id":"m2"}`)), PublishOptions{Participants: []string{"alice"}})
	marker(t, h, "bob", "end2")
	if got := types(bob.until(t, "end2")); got != "" {
		t.Errorf("inactive bob got %q", got)
	}
}

func TestRoomLifetimeAcrossStreams(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{RoomGrace: time.Hour})
	srv := testServer(t, h)
	// Join before any stream exists (the POST may arrive first): the membership waits for the stream.
	mustJoin(t, h, "r", "u")
	s1, s2 := dial(t, srv.URL, "u", ""), dial(t, srv.URL, "u", "")
	s1.next(t)
	s2.next(t)
	mustPublish(t, h, "r", textEvent("E", "one"), PublishOptions{})
	if s1.next(t).Event != "E" || s2.next(t).Event != "E" {
		t.Fatal("both streams should receive")
	}
	s1.Close()
	mustPublish(t, h, "r", textEvent("E", "two"), PublishOptions{})
	if ev := s2.next(t); !strings.Contains(ev.Data, `"two"`) {
		t.Fatalf("remaining stream got %v", ev)
	}
	s2.Close()
	waitFor(t, func() bool { return h.Streams() == 0 })
	// Within the grace period a new stream inherits the room without re-joining.
	s3 := dial(t, srv.URL, "u", "")
	s3.next(t)
	mustPublish(t, h, "r", textEvent("E", "three"), PublishOptions{})
	if ev := s3.next(t); !strings.Contains(ev.Data, `"three"`) {
		t.Fatalf("reconnected stream got %v", ev)
	}
	// Leave, LeaveAll and CloseRoom end delivery.
	mustJoin(t, h, "r2", "u")
	mustJoin(t, h, "r3", "u")
	if err := h.Leave(context.Background(), "r", "u"); err != nil {
		t.Fatal(err)
	}
	if err := h.CloseRoom(context.Background(), "r2"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"r", "r2", "r3"} {
		mustPublish(t, h, r, textEvent("E", r), PublishOptions{})
	}
	marker(t, h, "u", "m")
	if got := s3.until(t, "m"); len(got) != 1 || !strings.Contains(got[0].Data, `"r3"`) {
		t.Fatalf("after leave/close got %v, want only r3", got)
	}
	if err := h.LeaveAll(context.Background(), "u"); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, h, "r3", textEvent("E", "r3"), PublishOptions{})
	marker(t, h, "u", "m2")
	if got := s3.until(t, "m2"); len(got) != 0 {
		t.Fatalf("after LeaveAll got %v", got)
	}
}

func TestMaxRoomsPerUserDropsOldest(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{MaxRoomsPerUser: 2})
	srv := testServer(t, h)
	c := dial(t, srv.URL, "u", "")
	c.next(t)
	for _, r := range []string{"a", "b", "c"} {
		mustJoin(t, h, r, "u")
		mustPublish(t, h, "zz", textEvent("E", "spacer"), PublishOptions{}) // distinct join offsets
	}
	for _, r := range []string{"a", "b", "c"} {
		mustPublish(t, h, r, textEvent("E", r), PublishOptions{})
	}
	marker(t, h, "u", "m")
	got := c.until(t, "m")
	if len(got) != 2 || !strings.Contains(got[0].Data, `"b"`) || !strings.Contains(got[1].Data, `"c"`) {
		t.Fatalf("got %v, want b and c", got)
	}
}

func TestResumeWithLastEventID(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{})
	srv := testServer(t, h)
	c := dial(t, srv.URL, "u", "")
	c.next(t)
	mustJoin(t, h, "r", "u")
	mustPublish(t, h, "r", textEvent("E", "seen"), PublishOptions{})
	last := c.next(t).ID
	c.Close()
	waitFor(t, func() bool { return h.Streams() == 0 })
	// Missed while away: room events, a direct event, events for others (must not appear), a typing excluded.
	mustPublish(t, h, "r", textEvent("E", "m1"), PublishOptions{})
	mustPublish(t, h, "other", textEvent("E", "not-mine"), PublishOptions{})
	if err := h.PublishToUser(context.Background(), "u", textEvent("D", "m2")); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, h, "r", textEvent("E", "self-typing"), PublishOptions{ExcludeUser: "u"})
	mustPublish(t, h, "r", textEvent("E", "m3"), PublishOptions{})

	c2 := dial(t, srv.URL, "u", last)
	if ev := c2.next(t); ev.Event != "CONNECTED" || ev.ID != last+".1" {
		t.Fatalf("first event %v, want CONNECTED with its own id %s.1 (the position %s, not the client's id)", ev, last, last)
	}
	mustPublish(t, h, "r", textEvent("E", "live"), PublishOptions{})
	marker(t, h, "u", "m")
	var got []string
	ids := map[string]bool{}
	for _, ev := range c2.until(t, "m") {
		got = append(got, ev.Data)
		if ids[ev.ID] {
			t.Errorf("id %s twice", ev.ID)
		}
		ids[ev.ID] = true
	}
	want := []string{`"m1"`, `"m2"`, `"m3"`, `"live"`}
	if len(got) != len(want) {
		t.Fatalf("got %d events %v, want %v", len(got), got, want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("event %d = %s, want %s", i, got[i], want[i])
		}
	}
	// A position from another epoch (a restarted broker) cannot be resumed: the client is told (CONNECTED with the
	// current id, a reload hint for its room), and nothing is replayed.
	c3 := dial(t, srv.URL, "u", "zzzzzz-1")
	if ev := c3.next(t); ev.Event != "CONNECTED" || ev.ID == "zzzzzz-1" {
		t.Fatalf("got %v", ev)
	}
	marker(t, h, "u", "m3")
	if got := c3.until(t, "m3"); len(got) != 2 || !isReloadHint(got[0], "r") || !isReloadHint(got[1], "") {
		t.Fatalf("foreign epoch: got %v, want only the reload hints for r and the conversation list", got)
	}
}

func TestResumeGapOlderThanHistoryContinues(t *testing.T) {
	t.Parallel()
	b := NewMemoryBroker(MemoryBrokerConfig{HistorySize: 4})
	h := newTestHub(t, b, HubConfig{HistorySize: 4})
	srv := testServer(t, h)
	for i := 0; i < 10; i++ {
		if err := h.PublishToUser(context.Background(), "u", textEvent("E", "old")); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, srv.URL, "u", b.epoch+"-1")
	if ev := c.next(t); ev.ID != b.epoch+"-10" {
		t.Fatalf("CONNECTED %v, want the current id %s-10 (the client's position cannot be resumed)", ev, b.epoch)
	}
	marker(t, h, "u", "m")
	if got := c.until(t, "m"); len(got) != 1 || !isReloadHint(got[0], "") {
		t.Fatalf("got %v from beyond history, want only the conversation list's reload hint", got)
	}
}

func TestStreamCaps(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{MaxStreamsPerUser: 1, MaxStreamsPerNode: 2})
	srv := testServer(t, h)
	dial(t, srv.URL, "u", "").next(t)
	check := func(user string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("X-Test-User", user)
		resp, err := isolatedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 429 || string(body) != `{"error":"Too many connections"}` ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("got %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	check("u")
	dial(t, srv.URL, "v", "").next(t)
	check("w")
}

func TestShutdownEndsStreamsWithRetryHint(t *testing.T) {
	t.Parallel()
	h := NewHub(NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{}, nil, nil)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := testServer(t, h)
	c := dial(t, srv.URL, "u", "")
	c.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.Shutdown(ctx)
	if h.Streams() != 0 {
		t.Fatalf("%d streams still open after Shutdown", h.Streams())
	}
	var retry string
	for ev := range c.events {
		retry += ev.Raw
	}
	if !strings.HasPrefix(retry, "retry: ") {
		t.Fatalf("final bytes %q, want a retry hint", retry)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-Test-User", "u")
	resp, err := isolatedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("new stream after shutdown: %d", resp.StatusCode)
	}
}

func TestStreamEndsAtTokenExpiry(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{})
	srv := httptestServerExpiring(t, h, 200*time.Millisecond)
	c := dial(t, srv.URL, "u", "")
	c.next(t)
	c.expectEnd(t)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached within 10s")
}

func TestMetricsRegistered(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := NewHub(NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{}, nil, reg)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	if err := h.Ready(context.Background()); err != nil {
		t.Fatalf("Ready() = %v on a memory broker", err)
	}
	srv := testServer(t, h)
	c := dial(t, srv.URL, "u", "")
	c.next(t)
	marker(t, h, "u", "m")
	c.until(t, "m")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[f.GetName()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"relay_streams_open": 1, "relay_events_published_total": 1, "relay_events_delivered_total": 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	for _, name := range []string{"relay_broker_publish_seconds", "relay_broker_lag_seconds"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s not registered", name)
		}
	}
}

// TestHubRefusesBeforeStart: a Hub never starts itself. Before Start every method says ErrNotStarted and a stream
// request gets a 503 JSON answer; after Start the same calls work.
func TestHubRefusesBeforeStart(t *testing.T) {
	t.Parallel()
	h := NewHub(NewMemoryBroker(MemoryBrokerConfig{}), HubConfig{}, nil, nil)
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	ctx := context.Background()
	for name, err := range map[string]error{
		"Join":          h.Join(ctx, "r", "u"),
		"Leave":         h.Leave(ctx, "r", "u"),
		"LeaveAll":      h.LeaveAll(ctx, "u"),
		"CloseRoom":     h.CloseRoom(ctx, "r"),
		"PublishToRoom": h.PublishToRoom(ctx, "r", textEvent("E", "x"), PublishOptions{}),
		"PublishToUser": h.PublishToUser(ctx, "u", textEvent("E", "x")),
	} {
		if !errors.Is(err, ErrNotStarted) {
			t.Errorf("%s before Start: %v, want ErrNotStarted", name, err)
		}
	}
	srv := testServer(t, h)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-Test-User", "u")
	resp, err := isolatedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("Retry-After") == "" || string(body) != `{"error":"Real-time service unavailable"}` {
		t.Fatalf("stream before Start: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if h.Streams() != 0 {
		t.Fatalf("%d streams registered before Start", h.Streams())
	}

	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := dial(t, srv.URL, "u", "")
	c.next(t)
	mustJoin(t, h, "r", "u")
	mustPublish(t, h, "r", textEvent("E", "after"), PublishOptions{})
	if ev := c.next(t); !strings.Contains(ev.Data, `"after"`) {
		t.Fatalf("got %v", ev)
	}
	if err := h.Start(ctx); err != nil { // a second Start is harmless
		t.Fatal(err)
	}
}
