package main

import (
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// base is the smallest valid environment, with extra variables on top.
func base(extra map[string]string) map[string]string {
	m := map[string]string{"SUPABASE_URL": "http://127.0.0.1:54321", "SUPABASE_ANON_KEY": "k"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestLoadConfigListenAddr(t *testing.T) {
	for _, tc := range []struct{ listen, port, want string }{
		{"", "", ":3000"}, // every interface, as before LISTEN_ADDR existed
		{"", "4000", ":4000"},
		{"127.0.0.1", "", "127.0.0.1:3000"},
		{"127.0.0.1", "4000", "127.0.0.1:4000"},
		{"::1", "", "[::1]:3000"},
		{"[::1]", "", "[::1]:3000"},
		{"[::1]:8080", "4000", "[::1]:8080"}, // a port in LISTEN_ADDR wins over PORT
		{":8080", "", ":8080"},
		{"localhost", "", "localhost:3000"},
		{"127.0.0.1:0", "", "127.0.0.1:0"},
		{" 10.1.2.3 ", "", "10.1.2.3:3000"},
	} {
		c, err := LoadConfig(env(base(map[string]string{"LISTEN_ADDR": tc.listen, "PORT": tc.port})))
		if err != nil {
			t.Errorf("LISTEN_ADDR=%q PORT=%q: %v", tc.listen, tc.port, err)
			continue
		}
		if c.ListenAddr != tc.want || c.bindAddr() != tc.want {
			t.Errorf("LISTEN_ADDR=%q PORT=%q: %q, want %q", tc.listen, tc.port, c.ListenAddr, tc.want)
		}
	}
	for _, bad := range []string{"1.2.3.4:x", "1.2.3.4:70000", "1.2.3.4:", "a b", "fe80::1%eth0", "http://x",
		"host_name", "[::1]:-1", ".example", "a..b"} {
		_, err := LoadConfig(env(base(map[string]string{"LISTEN_ADDR": bad})))
		if err == nil || !strings.Contains(err.Error(), "LISTEN_ADDR") {
			t.Errorf("LISTEN_ADDR=%q accepted (%v)", bad, err)
		}
	}
	// A Config built by hand keeps the historical behaviour.
	if got := (Config{Port: 5000}).bindAddr(); got != ":5000" {
		t.Errorf("hand-built Config listens on %q", got)
	}
}

func TestLoadConfigRedisPrefix(t *testing.T) {
	c, err := LoadConfig(env(base(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisPrefix != "suparelay:" || c.redisKeys("rate:") != "suparelay:rate:" {
		t.Errorf("default prefix %q, keys %q", c.RedisPrefix, c.redisKeys("rate:"))
	}
	c, err = LoadConfig(env(base(map[string]string{"REDIS_PREFIX": "staging:qc:"})))
	if err != nil {
		t.Fatal(err)
	}
	for part, want := range map[string]string{"auth:": "staging:qc:auth:", "relay:": "staging:qc:relay:",
		"rate:": "staging:qc:rate:", "jobs:": "staging:qc:jobs:"} {
		if got := c.redisKeys(part); got != want {
			t.Errorf("redisKeys(%q) = %q, want %q", part, got, want)
		}
	}
	if got := (Config{}).redisKeys("jobs:"); got != "suparelay:jobs:" {
		t.Errorf("hand-built Config: %q", got)
	}
	for _, bad := range []string{"{tag}:", "a}", "two words:", "tab\t:", strings.Repeat("x", 65)} {
		if _, err := LoadConfig(env(base(map[string]string{"REDIS_PREFIX": bad}))); err == nil ||
			!strings.Contains(err.Error(), "REDIS_PREFIX") {
			t.Errorf("REDIS_PREFIX=%q accepted (%v)", bad, err)
		}
	}
}

func TestLoadConfigBodyTimeout(t *testing.T) {
	c, err := LoadConfig(env(base(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if c.BodyTimeout != 30*time.Second || c.BodyMinRate != 8192 {
		t.Errorf("defaults: %v %d", c.BodyTimeout, c.BodyMinRate)
	}
	c, err = LoadConfig(env(base(map[string]string{"REQUEST_BODY_TIMEOUT": "0", "REQUEST_BODY_MIN_RATE": "0"})))
	if err != nil || c.BodyTimeout != 0 || c.BodyMinRate != 0 {
		t.Errorf("off: %v %d %v", c.BodyTimeout, c.BodyMinRate, err)
	}
	_, err = LoadConfig(env(base(map[string]string{"REQUEST_BODY_TIMEOUT": "-1s", "REQUEST_BODY_MIN_RATE": "fast"})))
	for _, want := range []string{"REQUEST_BODY_TIMEOUT", "REQUEST_BODY_MIN_RATE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestLoadConfigGateAndMessageLimits(t *testing.T) {
	c, err := LoadConfig(env(base(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if c.SupabaseMaxConcurrent != 8 || c.SupabaseQueueWait != 250*time.Millisecond || c.MessageMetadataMaxBytes != 8192 ||
		c.MessageMaxRecipients != 1000 || c.MessageCiphertextMaxBytes != 65536 {
		t.Errorf("defaults: %+v", c)
	}
	c, err = LoadConfig(env(base(map[string]string{"SUPABASE_MAX_CONCURRENT": "0", "MESSAGE_METADATA_MAX_BYTES": "100"})))
	if err != nil || c.SupabaseMaxConcurrent != 0 || c.MessageMetadataMaxBytes != 100 {
		t.Errorf("set: %d %d %v", c.SupabaseMaxConcurrent, c.MessageMetadataMaxBytes, err)
	}
	_, err = LoadConfig(env(base(map[string]string{"SUPABASE_QUEUE_WAIT": "soon", "MESSAGE_MAX_RECIPIENTS": "many"})))
	for _, want := range []string{"SUPABASE_QUEUE_WAIT", "MESSAGE_MAX_RECIPIENTS"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

// TestEnvExampleListsEverything: every variable LoadConfig reads is in .env.example with a KEY= line.
func TestEnvExampleListsEverything(t *testing.T) {
	b, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	_, _ = LoadConfig(func(k string) string { read[k] = true; return base(nil)[k] })
	for k := range read {
		if !regexp.MustCompile(`(?m)^` + k + `=`).Match(b) {
			t.Errorf(".env.example does not list %s", k)
		}
	}
	for _, k := range []string{"LISTEN_ADDR", "REDIS_PREFIX", "REQUEST_BODY_TIMEOUT", "REQUEST_BODY_MIN_RATE"} {
		if !read[k] {
			t.Errorf("LoadConfig does not read %s", k)
		}
	}
}

// FuzzListenAddr: any LISTEN_ADDR either is refused or becomes an address net.Listen can parse, with a TCP port.
func FuzzListenAddr(f *testing.F) {
	for _, s := range []string{"", "127.0.0.1", "::1", "[::1]:80", ":0", "localhost:65535", "a:b:c", "[x]", "%", "[]:1"} {
		f.Add(s, 3000)
	}
	f.Fuzz(func(t *testing.T, v string, port int) {
		if port < 1 || port > 65535 {
			return // PORT is validated on its own
		}
		addr, err := listenAddr(v, port)
		if err != nil {
			return
		}
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%q → %q, which does not split: %v", v, addr, err)
		}
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
			t.Fatalf("%q → %q: port %q", v, addr, p)
		}
		if host != "" && !validHost(host) {
			t.Fatalf("%q → %q: host %q", v, addr, host)
		}
	})
}
