package relay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestMain lets the test binary double as a tiny relay node (RELAY_TEST_NODE=1), so one test can run two real
// processes sharing one Redis.
func TestMain(m *testing.M) {
	if os.Getenv("RELAY_TEST_NODE") == "1" {
		os.Exit(runTestNode())
	}
	os.Exit(m.Run())
}

// runTestNode serves /events (X-Test-User), /join?room=&user= and /publish?room=&type=&data= on a loopback port,
// prints "ADDR <host:port>" and runs until its stdin closes.
func runTestNode() int {
	b, err := NewRedisBrokerFromURL(os.Getenv("RELAY_TEST_REDIS"), RedisBrokerConfig{Prefix: os.Getenv("RELAY_TEST_PREFIX")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := HubConfig{Presence: os.Getenv("RELAY_TEST_PRESENCE") == "1"}
	cfg.StreamLeaseTTL, _ = time.ParseDuration(os.Getenv("RELAY_TEST_LEASE_TTL"))
	cfg.MaxStreamsPerUser, _ = strconv.Atoi(os.Getenv("RELAY_TEST_MAX_PER_USER"))
	h := NewHub(b, cfg, nil, nil)
	if err := h.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		h.ServeStream(w, r, r.Header.Get("X-Test-User"), time.Time{})
	})
	mux.HandleFunc("POST /join", func(w http.ResponseWriter, r *http.Request) {
		if err := h.Join(r.Context(), r.FormValue("room"), r.FormValue("user")); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		ev := Event{Type: r.FormValue("type"), Data: []byte(r.FormValue("data"))}
		var err error
		if u := r.FormValue("user"); u != "" {
			err = h.PublishToUser(r.Context(), u, ev)
		} else {
			err = h.PublishToRoom(r.Context(), r.FormValue("room"), ev, PublishOptions{})
		}
		if err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	fmt.Printf("ADDR %s\n", l.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	h.Shutdown(sctx)
	srv.Shutdown(sctx)
	return 0
}

// startNode runs the test binary as a node and returns its base URL.
func startNode(t *testing.T, redisURL, prefix string) string {
	t.Helper()
	u, _ := startNodeCmd(t, redisURL, prefix)
	return u
}

// startNodeCmd is startNode with extra environment (RELAY_TEST_PRESENCE=1, RELAY_TEST_LEASE_TTL=<duration>,
// RELAY_TEST_MAX_PER_USER=<n>) and the process, for tests that kill it.
func startNodeCmd(t *testing.T, redisURL, prefix string, env ...string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RELAY_TEST_NODE=1", "RELAY_TEST_REDIS="+redisURL, "RELAY_TEST_PREFIX="+prefix)
	cmd.Env = append(cmd.Env, env...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("node did not start: %q %v", line, err)
	}
	return "http://" + strings.TrimSpace(line[5:]), cmd
}

func postForm(t *testing.T, u string, v url.Values) {
	t.Helper()
	resp, err := http.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", u, resp.StatusCode, body)
	}
}

func TestTwoNodeProcessesOnRedis(t *testing.T) {
	t.Parallel()
	redisURL := testenv.RedisURL(t)
	prefix := testRedisPrefix(t, redisURL)
	a, b := startNode(t, redisURL, prefix), startNode(t, redisURL, prefix)

	c := dial(t, a+"/events", "u", "")
	c.next(t)
	postForm(t, b+"/join", url.Values{"room": {"r"}, "user": {"u"}})
	postForm(t, b+"/publish", url.Values{"room": {"r"}, "type": {"E"}, "data": {`"from-b"`}})
	ev := c.next(t)
	if !strings.Contains(ev.Data, `"from-b"`) {
		t.Fatalf("got %v", ev)
	}
	c.Close()
	for _, d := range []string{`"m1"`, `"m2"`} {
		postForm(t, a+"/publish", url.Values{"room": {"r"}, "type": {"E"}, "data": {d}})
	}
	c2 := dial(t, b+"/events", "u", ev.ID)
	c2.next(t)
	postForm(t, a+"/publish", url.Values{"user": {"u"}, "type": {"MARKER"}, "data": {`"end"`}})
	got := c2.until(t, "end")
	if len(got) != 2 || !strings.Contains(got[0].Data, `"m1"`) || !strings.Contains(got[1].Data, `"m2"`) {
		t.Fatalf("resumed on the other process: %v", got)
	}
}
