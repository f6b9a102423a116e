package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// logSink collects the server's JSON log lines.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// access returns the access-log lines ("http request") for path.
func (s *logSink) access(path string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "http request" && m["path"] == path {
			out = append(out, m)
		}
	}
	return out
}

// waitAccess waits for the access-log line of path (it is written after the response).
func (s *logSink) waitAccess(t *testing.T, path string) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if l := s.access(path); len(l) > 0 {
			return l[len(l)-1]
		}
	}
	t.Fatalf("no access-log line for %s", path)
	return nil
}

func noSupabase(t *testing.T, extra map[string]string) map[string]string {
	m := map[string]string{"SUPABASE_URL": "http://" + freeAddr(t), "SUPABASE_ANON_KEY": devkeys.AnonKey()}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// TestListenAddrBinds: LISTEN_ADDR decides the interface (and here the port: 0 = a free one).
func TestListenAddrBinds(t *testing.T) {
	cfg, err := LoadConfig(env(noSupabase(t, map[string]string{"LISTEN_ADDR": "127.0.0.1:0"})))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMain(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(); err != nil {
		t.Fatal(err)
	}
	defer m.listener.Close()
	a := m.listener.Addr().(*net.TCPAddr)
	if !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || a.Port == 0 {
		t.Fatalf("listening on %v, want 127.0.0.1 and a port", a)
	}
}

// TestSlowBodyThroughServer: the finding of issue 11 against the real server: Content-Length: 1000 and then a byte
// every 50 ms (scaled down from one a second) to an /api route gets 408 JSON soon after REQUEST_BODY_TIMEOUT, the
// server lets the connection go, and the access log records the 408 and the client.
func TestSlowBodyThroughServer(t *testing.T) {
	logs := &logSink{}
	base, _ := startMainLogging(t, noSupabase(t, map[string]string{"REQUEST_BODY_TIMEOUT": "400ms",
		"REQUEST_BODY_MIN_RATE": "100"}), logs)
	addr := strings.TrimPrefix(base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /api/auth/send-sms HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", addr)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusRequestTimeout || string(body) != `{"error":"Request body timed out"}` || !res.Close {
		t.Fatalf("got %d %s %v, want 408 JSON with Connection: close", res.StatusCode, body, res.Header)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("408 after %v", el)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the 408 the connection is still open (read: %v)", err)
	}
	line := logs.waitAccess(t, "/api/auth/send-sms")
	if line["status"] != float64(408) || line["client"] != "127.0.0.1" {
		t.Errorf("access log %v, want status 408 and client 127.0.0.1", line)
	}

	// A body that arrives in time gets the handler's own answer.
	res2, err := isolatedClient.Post(base+"/api/auth/send-sms", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode == http.StatusRequestTimeout {
		t.Errorf("a prompt body got 408")
	}
}

// TestAccessLogClient: the access log names the client as the rate limits do: the X-Forwarded-For client when the
// peer is a trusted proxy, else the peer, whatever the headers say.
func TestAccessLogClient(t *testing.T) {
	for _, tc := range []struct{ proxies, want string }{{"127.0.0.1", "198.51.100.23"}, {"", "127.0.0.1"}} {
		logs := &logSink{}
		base, _ := startMainLogging(t, noSupabase(t, map[string]string{"TRUSTED_PROXIES": tc.proxies}), logs)
		req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.23")
		res, err := isolatedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := logs.waitAccess(t, "/healthz")["client"]; got != tc.want {
			t.Errorf("TRUSTED_PROXIES=%q: access log client %v, want %s", tc.proxies, got, tc.want)
		}
	}
}

// TestRedisPrefixThroughMain: with REDIS_PREFIX set, the server's keys (here the rate limits') live under it.
func TestRedisPrefixThroughMain(t *testing.T) {
	url := testenv.RedisURL(t)
	prefix := "test-" + testenv.RandomHex(4) + ":"
	base := startMain(t, noSupabase(t, map[string]string{"REDIS_URL": url, "REDIS_PREFIX": prefix}))
	res, err := isolatedClient.Post(base+"/api/auth/send-sms", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	opt, _ := redis.ParseURL(url)
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	rate := 0
	for _, k := range keys {
		if strings.HasPrefix(k, prefix+"rate:auth:") {
			rate++
		}
	}
	if rate != 2 { // the auth rule's IP and IP+UA windows
		t.Fatalf("keys under %s: %v, want the auth rule's two rate windows under %srate:", prefix, keys, prefix)
	}
}

// TestKeepAliveParkedThroughServer: with HTTP_PARK_IDLE (the default) a keep-alive connection between requests
// is parked (suparelay_http_parked_connections), and its next requests are served as before; with
// HTTP_PARK_IDLE=false net/http keeps it.
func TestKeepAliveParkedThroughServer(t *testing.T) {
	for _, park := range []string{"true", "false"} {
		t.Run("HTTP_PARK_IDLE="+park, func(t *testing.T) {
			base, _ := startMainLogging(t, noSupabase(t, map[string]string{"HTTP_PARK_IDLE": park}), io.Discard)
			addr := strings.TrimPrefix(base, "http://")
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for i := range 3 {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("request %d: status %d", i, resp.StatusCode)
				}
			}
			want := map[string]string{"true": "1", "false": "0"}[park]
			var got string
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				res, err := http.Get(base + "/metrics") // its own connection, not parked yet while it is served
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				for _, line := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(line, "suparelay_http_parked_connections "); ok {
						got = v
					}
				}
				if got == want {
					return
				}
			}
			t.Errorf("suparelay_http_parked_connections = %q, want %s", got, want)
		})
	}
}
