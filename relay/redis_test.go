package relay

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// redisHub is a Hub on its own RedisBroker (its own connections), as a separate node would have.
func redisHub(t *testing.T, url, prefix string) *Hub {
	t.Helper()
	b, err := NewRedisBrokerFromURL(url, RedisBrokerConfig{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	h := newTestHub(t, b, HubConfig{})
	if err := h.Ready(context.Background()); err != nil {
		t.Fatalf("hub not ready: %v", err)
	}
	return h
}

func TestTwoHubsOnRedis(t *testing.T) {
	t.Parallel()
	url := testenv.RedisURL(t)
	prefix := testRedisPrefix(t, url)
	hubA, hubB := redisHub(t, url, prefix), redisHub(t, url, prefix)
	srvA, srvB := testServer(t, hubA), testServer(t, hubB)

	c := dial(t, srvA.URL, "u", "")
	c.next(t)
	// The join lands on node B (the POST went there); the stream is on A.
	mustJoin(t, hubB, "r", "u")
	mustPublish(t, hubB, "r", textEvent("E", "from-b"), PublishOptions{})
	ev := c.next(t)
	if !strings.Contains(ev.Data, `"from-b"`) {
		t.Fatalf("client on A got %v, want the event published on B", ev)
	}
	c.Close()
	waitFor(t, func() bool { return hubA.Streams() == 0 })

	// Missed while away, published on A; the client comes back on B.
	mustPublish(t, hubA, "r", textEvent("E", "m1"), PublishOptions{})
	mustPublish(t, hubA, "elsewhere", textEvent("E", "not-mine"), PublishOptions{})
	if err := hubA.PublishToUser(context.Background(), "u", textEvent("D", "m2")); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, hubA, "r", textEvent("E", "m3"), PublishOptions{})
	checkResume := func(srvURL string, h *Hub) {
		t.Helper()
		c2 := dial(t, srvURL, "u", ev.ID)
		if first := c2.next(t); first.Event != "CONNECTED" {
			t.Fatalf("first %v", first)
		}
		marker(t, h, "u", "end")
		var got []string
		for _, e := range c2.until(t, "end") {
			got = append(got, e.Data)
		}
		want := []string{`"m1"`, `"m2"`, `"m3"`}
		if len(got) != len(want) {
			t.Fatalf("resumed %v, want %v", got, want)
		}
		for i := range want {
			if !strings.Contains(got[i], want[i]) {
				t.Fatalf("resumed %v, want %v", got, want)
			}
		}
		c2.Close()
	}
	checkResume(srvB.URL, hubB)
	// A node started after those events has nothing in its ring: resume comes from Redis history.
	hubC := redisHub(t, url, prefix)
	checkResume(testServer(t, hubC).URL, hubC)
}

func TestRedisUnavailableLocalDeliveryContinues(t *testing.T) {
	t.Parallel()
	b := unreachableRedisBroker(t)
	h := newTestHub(t, b, HubConfig{})
	if err := h.Ready(context.Background()); err == nil {
		t.Fatal("Ready() = nil with Redis down")
	}
	srv := testServer(t, h)
	c := dial(t, srv.URL, "u", "")
	c.next(t)
	mustJoin(t, h, "r", "u")
	mustPublish(t, h, "r", textEvent("E", "local"), PublishOptions{})
	if ev := c.next(t); !strings.Contains(ev.Data, `"local"`) || ev.ID == "" {
		t.Fatalf("got %v, want the event delivered locally with an id", ev)
	}
	if got := counterValue(t, h.m.brokerErrors.WithLabelValues("publish")); got < 1 {
		t.Fatalf("publish errors counted %v", got)
	}
}

// TestRedisOutageAndRecovery runs a private redis-server, stops it under a live hub, and starts it again.
func TestRedisOutageAndRecovery(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not installed")
		}
		t.Skip("redis-server not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	start := func() *exec.Cmd {
		cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "no", "--dir", t.TempDir())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitFor(t, func() bool {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		return cmd
	}
	srvProc := start()
	b, err := NewRedisBrokerFromURL(fmt.Sprintf("redis://127.0.0.1:%d/0", port), RedisBrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	h := newTestHub(t, b, HubConfig{})
	srv := testServer(t, h)
	c := dial(t, srv.URL, "u", "")
	c.next(t)
	mustJoin(t, h, "r", "u")
	mustPublish(t, h, "r", textEvent("E", "before"), PublishOptions{})
	c.next(t)

	srvProc.Process.Kill()
	srvProc.Wait()
	waitFor(t, func() bool { return h.Ready(context.Background()) != nil })
	mustPublish(t, h, "r", textEvent("E", "during"), PublishOptions{})
	if ev := c.next(t); !strings.Contains(ev.Data, `"during"`) {
		t.Fatalf("during outage got %v", ev)
	}

	start()
	waitFor(t, func() bool { return h.Ready(context.Background()) == nil })
	// "during" reached only this node and the new Redis is empty: the stream ends with a retry hint, so that its
	// client resumes (and learns that it cannot resume across the hole) instead of going on as if nothing were lost.
	var tail string
	for ev := range c.events {
		tail += ev.Raw
	}
	if !strings.Contains(tail, "retry: ") {
		t.Fatalf("after recovery the stream ended with %q, want a retry hint", tail)
	}
	// Two things announce the hole, each ending the streams open at that moment: the subscription's recovery
	// finding the new log empty, and the new epoch this node starts for the event only it received (its Reset is
	// retried with backoff, so on a loaded box it may come after the reconnect below). The client reconnects
	// after each, as a browser does (bounded), until an event reaches it on a stream of the new log.
	var ev sseEvent
	for attempt := 0; ; attempt++ {
		c = dial(t, srv.URL, "u", "")
		c.next(t)
		// The room membership lives on locally; re-join to store it again.
		mustJoin(t, h, "r", "u")
		mustPublish(t, h, "r", textEvent("E", "after"), PublishOptions{})
		ev = c.next(t)
		if ev.Retry != "" && ev.Event == "" && attempt < 5 {
			continue // this stream too was ended for the hole
		}
		break
	}
	if !strings.Contains(ev.Data, `"after"`) {
		t.Fatalf("after recovery got %v", ev)
	}
	if p, ok := parseID(ev.ID); !ok || p.Offset == 0 {
		t.Fatalf("after recovery id %q", ev.ID)
	}
}

// unreachableRedisBroker is a Redis broker whose address nothing listens on (a Redis that is down).
func unreachableRedisBroker(t *testing.T) *RedisBroker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	b, err := NewRedisBrokerFromURL("redis://"+addr+"/0", RedisBrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
