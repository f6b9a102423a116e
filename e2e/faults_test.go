package e2e

// The fault suite: real suparelay processes on the real stack while its parts fail — a node killed with open
// streams, Redis restarted with and without its data, PostgREST, Auth and Storage stopped and started again, a node
// told to stop in the middle of sends. It stops and starts the stack's own services (scripts/stack.sh stop|start),
// so it cannot share the stack with other tests: make test runs it in a step of its own (SUPARELAY_FAULTS=1), after
// every other package. Each test logs one row of the fault table ("fault-table: …") that the note quotes.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// faultCluster is a set of suparelay nodes sharing the stack's Redis.
type faultCluster struct {
	t     *testing.T
	bin   string
	dir   string
	nodes map[string]*faultNode
}

// faultNode is one node and its base URL.
type faultNode struct {
	*relayNode
	name string
	url  string
	port string
}

// newFaultCluster skips unless the fault step runs, then builds the server once for the test.
func newFaultCluster(t *testing.T) *faultCluster {
	t.Helper()
	if os.Getenv("SUPARELAY_FAULTS") != "1" {
		t.Skip("the fault suite runs in its own step of make test (SUPARELAY_FAULTS=1): it stops and starts the stack's services")
	}
	testenv.SupabaseURL(t) // fails under CI, skips elsewhere, without a stack
	dir := t.TempDir()
	return &faultCluster{t: t, bin: buildSuparelay(t, dir), dir: dir, nodes: map[string]*faultNode{}}
}

// start runs (or runs again, on its old port) the node called name and waits until it is ready.
func (c *faultCluster) start(name string) *faultNode {
	c.t.Helper()
	n := c.nodes[name]
	port := ""
	if n != nil {
		port = n.port
	} else {
		port = freePort(c.t)
	}
	logPath := filepath.Join(c.dir, name+".log")
	if n != nil {
		logPath = filepath.Join(c.dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	}
	env := map[string]string{
		"PORT": port, "LISTEN_ADDR": "127.0.0.1", "SUPABASE_URL": testenv.SupabaseURL(c.t), "SUPABASE_ANON_KEY": os.Getenv("SUPABASE_ANON_KEY"),
		"SUPABASE_SERVICE_ROLE_KEY": os.Getenv("SUPABASE_SERVICE_ROLE_KEY"),
		"SUPABASE_JWT_SECRET":       os.Getenv("SUPABASE_JWT_SECRET"), "REDIS_URL": testenv.RedisURL(c.t),
		"EXPIRY_JOB_INTERVAL": "0", "RATE_LIMITS": "false", "LOG_FORMAT": "json", "LOG_LEVEL": "info",
		"SHUTDOWN_TIMEOUT": "10s", "SUPABASE_TIMEOUT": "5s",
	}
	n = &faultNode{relayNode: startNode(c.t, c.bin, c.dir, logPath, env), name: name,
		url: "http://127.0.0.1:" + port, port: port}
	c.nodes[name] = n
	c.t.Cleanup(func() {
		n.stop(15 * time.Second)
		if c.t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				c.t.Logf("log of %s:\n%s", name, tail(b, 4000))
			}
		}
	})
	waitReady(c.t, n.url+"/readyz")
	return n
}

// stackCtl runs scripts/stack.sh with args on the stack the test environment names (STACK_NAME).
func stackCtl(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "stack.sh"), args...)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("stack.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// outage stops svc of the stack and makes sure it is started again when the test ends, whatever happens.
func outage(t *testing.T, svc string, keep bool) (restore func()) {
	t.Helper()
	args := []string{"stop", svc}
	if keep {
		args = append(args, "--keep")
	}
	stackCtl(t, args...)
	var once sync.Once
	restore = func() { once.Do(func() { stackCtl(t, "start", svc) }) }
	t.Cleanup(restore)
	return restore
}

// call is one JSON request to a node; it returns the status, the body and how long the answer took.
func call(t *testing.T, method, url, token string, body any) (int, []byte, time.Duration) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	res, err := client.Do(req)
	if err != nil {
		return 0, []byte(err.Error()), time.Since(t0)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, b, time.Since(t0)
}

// isJSONError reports whether b is a JSON object with an "error" string.
func isJSONError(b []byte) bool {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	_, ok := m["error"].(string)
	return ok
}

// chatPair is two users with a direct conversation.
type chatPair struct {
	a, b           testenv.User
	tokA, tokB     string
	conversationID string
}

func newChatPair(t *testing.T, n *faultNode) chatPair {
	t.Helper()
	p := chatPair{a: testenv.NewUser(t), b: testenv.NewUser(t)}
	p.tokA, p.tokB = p.a.Token(t, time.Hour), p.b.Token(t, time.Hour)
	st, body, _ := call(t, "POST", n.url+"/api/chat/conversations", p.tokA,
		map[string]any{"type": "direct", "participant_ids": []string{p.b.ID}})
	if st != 200 {
		t.Fatalf("create conversation: %d %s", st, body)
	}
	var out struct {
		ID string `json:"conversation_id"`
	}
	_ = json.Unmarshal(body, &out)
	if out.ID == "" {
		t.Fatalf("create conversation: %s", body)
	}
	p.conversationID = out.ID
	return p
}

// send posts a text message from a to b through n; it returns the status and, on success, the message id.
func (p chatPair) send(t *testing.T, n *faultNode, text string) (int, string) {
	t.Helper()
	st, body, _ := call(t, "POST", n.url+"/api/messages/send", p.tokA, map[string]any{
		"conversationId": p.conversationID, "messageType": "text",
		"encryptedContents": map[string]string{p.a.ID: "a:" + text, p.b.ID: "b:" + text}})
	if st != 200 {
		return st, ""
	}
	var out struct {
		Message struct {
			ID string `json:"id"`
		} `json:"message"`
	}
	_ = json.Unmarshal(body, &out)
	return st, out.Message.ID
}

// mustSend is send that fails the test unless the message was stored and acknowledged.
func (p chatPair) mustSend(t *testing.T, n *faultNode, text string) string {
	t.Helper()
	st, id := p.send(t, n, text)
	if st != 200 || id == "" {
		t.Fatalf("send %q through %s: status %d", text, n.name, st)
	}
	return id
}

// faultEvent is one event of a stream.
type faultEvent struct {
	Type      string
	ID        string
	MessageID string // NEW_MESSAGE's data.message.id
	Reload    bool   // data.shouldReloadMessages
}

// faultStream is an SSE connection that records every event and the last frame before the end.
type faultStream struct {
	events chan faultEvent
	cancel context.CancelFunc
	mu     sync.Mutex
	last   string // the last raw frame received
	ended  chan struct{}
}

// openStream connects to n's /api/events as token's user, resuming after lastID when it is not empty, and waits
// for CONNECTED.
func openFaultStream(t *testing.T, n *faultNode, token, lastID string) (*faultStream, faultEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", n.url+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	streamClient := &http.Client{Transport: &http.Transport{}}
	res, err := streamClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("open stream on %s: %v", n.name, err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		t.Fatalf("open stream on %s: %d %s", n.name, res.StatusCode, b)
	}
	s := &faultStream{events: make(chan faultEvent, 1024), cancel: cancel, ended: make(chan struct{})}
	t.Cleanup(cancel)
	go s.read(res.Body)
	ev := s.next(t, 10*time.Second)
	if ev.Type != "CONNECTED" {
		t.Fatalf("first event on %s = %s, want CONNECTED", n.name, ev.Type)
	}
	return s, ev
}

func (s *faultStream) read(body io.ReadCloser) {
	defer close(s.ended)
	defer close(s.events)
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var ev faultEvent
	var raw strings.Builder
	for sc.Scan() {
		line := sc.Text()
		raw.WriteString(line + "\n")
		switch {
		case line == "":
			s.mu.Lock()
			s.last = raw.String()
			s.mu.Unlock()
			raw.Reset()
			if ev.Type != "" {
				s.events <- ev
			}
			ev = faultEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.Type = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			var env struct {
				Data struct {
					Message struct {
						ID string `json:"id"`
					} `json:"message"`
					Reload bool `json:"shouldReloadMessages"`
				} `json:"data"`
			}
			if json.Unmarshal([]byte(line[len("data: "):]), &env) == nil {
				ev.MessageID, ev.Reload = env.Data.Message.ID, env.Data.Reload
			}
		}
	}
}

// next is the next event; it fails the test after timeout or when the stream ends.
func (s *faultStream) next(t *testing.T, timeout time.Duration) faultEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(timeout):
		t.Fatal("no event within timeout")
	}
	return faultEvent{}
}

// isReloadHint reports whether ev is the "cannot resume" hint (sse.md): a NEW_MESSAGE that names no message but
// says shouldReloadMessages, which makes the frontend reload the open conversation or the list.
func (ev faultEvent) isReloadHint() bool {
	return ev.Type == "NEW_MESSAGE" && ev.MessageID == "" && ev.Reload
}

// collect gathers the NEW_MESSAGE ids until every id of want has arrived, the stream ends, or timeout passes; it
// also returns the last event id seen and whether the client was told to reload.
func (s *faultStream) collect(want []string, timeout time.Duration) (got map[string]bool, lastID string, reload bool) {
	got = map[string]bool{}
	deadline := time.After(timeout)
	for {
		missing := 0
		for _, id := range want {
			if !got[id] {
				missing++
			}
		}
		if missing == 0 {
			return got, lastID, reload
		}
		select {
		case ev, ok := <-s.events:
			if !ok {
				return got, lastID, reload
			}
			if ev.ID != "" {
				lastID = ev.ID
			}
			switch {
			case ev.isReloadHint():
				reload = true
			case ev.Type == "NEW_MESSAGE":
				got[ev.MessageID] = true
			}
		case <-deadline:
			return got, lastID, reload
		}
	}
}

// lastFrame is the last complete frame the stream received.
func (s *faultStream) lastFrame() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func countMissing(want []string, got map[string]bool) int {
	n := 0
	for _, id := range want {
		if !got[id] {
			n++
		}
	}
	return n
}

// TestFaultNodeKilled: a node with open streams dies (kill -9); its clients resume on another node with their
// Last-Event-ID and receive everything sent meanwhile.
func TestFaultNodeKilled(t *testing.T) {
	c := newFaultCluster(t)
	n1, n2 := c.start("n1"), c.start("n2")
	p := newChatPair(t, n2)
	s, _ := openFaultStream(t, n1, p.tokB, "")
	before := []string{p.mustSend(t, n2, "1"), p.mustSend(t, n2, "2"), p.mustSend(t, n2, "3")}
	got, lastID, _ := s.collect(before, 10*time.Second)
	if m := countMissing(before, got); m != 0 || lastID == "" {
		t.Fatalf("before the fault: %d of 3 events missing (last id %q)", m, lastID)
	}
	n1.kill()
	<-s.ended
	during := []string{p.mustSend(t, n2, "4"), p.mustSend(t, n2, "5"), p.mustSend(t, n2, "6")}
	s2, _ := openFaultStream(t, n2, p.tokB, lastID)
	got, _, _ = s2.collect(during, 10*time.Second)
	lost := countMissing(during, got)
	t.Logf("fault-table: kill -9 of a node with open streams | the stream ended; resumed on another node with Last-Event-ID, the sends meanwhile replayed | %d | 0", lost)
	if lost != 0 {
		t.Fatalf("%d of the 3 messages sent while the client was away were not replayed", lost)
	}
	after := p.mustSend(t, n2, "7")
	if got, _, _ := s2.collect([]string{after}, 10*time.Second); !got[after] {
		t.Fatal("the resumed stream gets no live events")
	}
}

// redisRestart: a stream on one node, sends through another, while Redis restarts with (keep) or without its data.
// Whatever could not be delivered must be announced: the event arrives (live or replayed on resume), or the client
// is told to reload; a send answered 2xx is stored.
func redisRestart(t *testing.T, keep bool) {
	c := newFaultCluster(t)
	n1, n2 := c.start("n1"), c.start("n2")
	p := newChatPair(t, n2)
	s, _ := openFaultStream(t, n1, p.tokB, "")
	first := p.mustSend(t, n2, "before")
	got, lastID, _ := s.collect([]string{first}, 10*time.Second)
	if !got[first] {
		t.Fatal("no event before the fault")
	}
	restore := outage(t, "redis", keep)
	st, during := p.send(t, n2, "during")
	restore()
	// Sends go on while the nodes reconnect to Redis (the first may reach only their own node's streams).
	var sent []string
	if during != "" {
		sent = append(sent, during)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(sent) < 3 && time.Now().Before(deadline) {
		if code, id := p.send(t, n2, "after"); code == 200 {
			sent = append(sent, id)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if len(sent) < 3 {
		t.Fatal("sends still fail 30 s after Redis is back")
	}
	// The client follows what it is given: live events, or the end of its stream and a resume with its last id.
	seen, reloads, resumes := map[string]bool{}, 0, 0
	for round := 0; round < 5 && countMissing(sent, seen) > 0 && reloads == 0; round++ {
		g, id, reload := s.collect(sent, 10*time.Second)
		for k := range g {
			seen[k] = true
		}
		if id != "" {
			lastID = id
		}
		if reload {
			reloads++
			break
		}
		select {
		case <-s.ended:
		default:
			continue // still open: more may come
		}
		s, _ = openFaultStream(t, n1, p.tokB, lastID)
		resumes++
	}
	lostSilently := 0
	if reloads == 0 {
		lostSilently = countMissing(sent, seen)
	}
	what := map[bool]string{true: "restart of Redis with its data", false: "restart of Redis without its data (history gone)"}[keep]
	t.Logf("fault-table: %s | send during the outage: HTTP %d; %d of %d sends seen, %d resumes, told to reload %d times | %d | 0",
		what, st, len(seen), len(sent), resumes, reloads, lostSilently)
	if lostSilently != 0 {
		t.Fatalf("%d acknowledged messages were neither delivered nor announced by a reload", lostSilently)
	}
	if st == 200 && during != "" {
		var n int
		if err := testenv.DB(t).QueryRow(context.Background(), `select count(*) from public.messages where id = $1`, during).Scan(&n); err != nil || n != 1 {
			t.Fatalf("acknowledged send not stored: %d %v", n, err)
		}
	}
}

func TestFaultRedisRestartKeep(t *testing.T)  { redisRestart(t, true) }
func TestFaultRedisRestartEmpty(t *testing.T) { redisRestart(t, false) }

// TestFaultUpstreamRestart: PostgREST, Auth and Storage stop and start again; meanwhile the routes that need them
// answer a JSON 502/503 quickly, and afterwards they work again without restarting suparelay.
func TestFaultUpstreamRestart(t *testing.T) {
	c := newFaultCluster(t)
	n := c.start("n1")
	p := newChatPair(t, n)
	msg := p.mustSend(t, n, "with a file")
	// GET /api/auth/user asks Auth about the session, so it needs a session Auth issued (a real sign-in).
	signedIn := testenv.SignIn(t, testenv.NewUserWithTestPhone(t).Phone).AccessToken
	probes := []struct {
		svc, what string
		req       func() (int, []byte, time.Duration)
	}{
		{"postgrest", "GET /api/chat/conversations", func() (int, []byte, time.Duration) {
			return call(t, "GET", n.url+"/api/chat/conversations", p.tokA, nil)
		}},
		{"auth", "GET /api/auth/user", func() (int, []byte, time.Duration) {
			return call(t, "GET", n.url+"/api/auth/user", signedIn, nil)
		}},
		{"storage", "POST /api/files/upload-url", func() (int, []byte, time.Duration) {
			return call(t, "POST", n.url+"/api/files/upload-url", p.tokA, map[string]any{
				"conversationId": p.conversationID, "messageId": msg, "encryptedMetadata": map[string]any{"k": "v"}})
		}},
	}
	for _, pr := range probes {
		t.Run(pr.svc, func(t *testing.T) {
			if st, body, _ := pr.req(); st != 200 {
				t.Fatalf("%s before the fault: %d %s", pr.what, st, body)
			}
			restore := outage(t, pr.svc, false)
			st, body, took := pr.req()
			if (st != 502 && st != 503 && st != 504) || !isJSONError(body) {
				t.Errorf("%s with %s down: %d %s, want a JSON 502/503/504", pr.what, pr.svc, st, body)
			}
			restore()
			var st2 int
			var body2 []byte
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if st2, body2, _ = pr.req(); st2 == 200 {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Logf("fault-table: restart of %s | %s: HTTP %d JSON in %v during, HTTP %d after (no restart of suparelay) | 0 | 0",
				pr.svc, pr.what, st, took.Round(time.Millisecond), st2)
			if st2 != 200 {
				t.Fatalf("%s after %s is back: %d %s", pr.what, pr.svc, st2, body2)
			}
		})
	}
}

// TestFaultTermDuringSends: SIGTERM while sends are in flight. Every send answered 2xx is in the database, and the
// open stream gets a retry hint before the node closes it.
func TestFaultTermDuringSends(t *testing.T) {
	c := newFaultCluster(t)
	n := c.start("n1")
	p := newChatPair(t, n)
	s, _ := openFaultStream(t, n, p.tokB, "")
	var mu sync.Mutex
	var acked []string
	statuses := map[int]int{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 500; i++ { // bounded: the node stops long before
				select {
				case <-stop:
					return
				default:
				}
				st, id := p.send(t, n, fmt.Sprintf("w%d-%d", w, i))
				mu.Lock()
				statuses[st]++
				if st == 200 && id != "" {
					acked = append(acked, id)
				}
				mu.Unlock()
				if st == 0 {
					return // connection refused: the node is gone
				}
			}
		}(w)
	}
	for {
		mu.Lock()
		k := len(acked)
		mu.Unlock()
		if k >= 20 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not stop within 30 s of SIGTERM")
	}
	close(stop)
	wg.Wait()
	select {
	case <-s.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end with the node")
	}
	var stored int
	if err := testenv.DB(t).QueryRow(context.Background(),
		`select count(*) from public.messages where id = any($1::uuid[])`, acked).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	hint := strings.Contains(s.lastFrame(), "retry: ")
	t.Logf("fault-table: SIGTERM during sends (4 senders) | answers %v; the stream's last frame has a retry hint: %v | 0 | %d of %d",
		statuses, hint, len(acked)-stored, len(acked))
	if stored != len(acked) {
		t.Fatalf("%d of %d acknowledged sends are not in the database", len(acked)-stored, len(acked))
	}
	if !hint {
		t.Fatalf("the stream's last frame has no retry hint: %q", s.lastFrame())
	}
}
