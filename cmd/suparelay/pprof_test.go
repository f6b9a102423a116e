package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPprofAddr: DEBUG_PPROF_ADDR is off by default and binds only to loopback.
func TestPprofAddr(t *testing.T) {
	c, err := LoadConfig(env(base(nil)))
	if err != nil || c.DebugPprofAddr != "" {
		t.Fatalf("default: %q, %v; want off", c.DebugPprofAddr, err)
	}
	for _, ok := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:0", "127.0.0.2:1"} {
		if c, err := LoadConfig(env(base(map[string]string{"DEBUG_PPROF_ADDR": ok}))); err != nil || c.DebugPprofAddr != ok {
			t.Errorf("%q: %q, %v", ok, c.DebugPprofAddr, err)
		}
	}
	for _, bad := range []string{":6060", "0.0.0.0:6060", "[::]:6060", "10.0.0.1:6060", "example.com:6060", "6060", "garbage"} {
		if _, err := LoadConfig(env(base(map[string]string{"DEBUG_PPROF_ADDR": bad}))); err == nil ||
			!strings.Contains(err.Error(), "DEBUG_PPROF_ADDR") {
			t.Errorf("%q accepted (err %v)", bad, err)
		}
	}
}

// TestServePprof: the listener serves the heap and goroutine profiles and stops with its context.
func TestServePprof(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	if err := servePprof(ctx, addr, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
		res, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), "profile") {
			t.Errorf("%s: %d %.100q", p, res.StatusCode, b)
		}
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the profiling listener still accepts after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
