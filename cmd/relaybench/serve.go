package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qryptchat/suparelay/internal/netpoll"
	"github.com/qryptchat/suparelay/relay"
)

// serve runs one relay node: a Hub over the memory broker (or Redis with -redis) behind a trivial auth shim
// (the user id is the "u" query parameter), plus the bench's control endpoints:
//
//	GET  /events?u=<user>                          the SSE stream (relay.Hub.ServeStream)
//	POST /join?room=<r>&prefix=<p>&from=<i>&n=<k>  joins users <p><i> … <p><i+k-1> to room r
//	POST /publish?room=<r>  body = JSON payload    PublishToRoom(r, Event{Type:"B", Data: body})
//	GET  /stats?gc=1                               memory and stream counts (after a GC when gc=1)
func serve(addr, redisURL, prefix string, queue int, detach, epoll, lean bool) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var b relay.Broker = relay.NewMemoryBroker(relay.MemoryBrokerConfig{})
	if redisURL != "" {
		rb, err := relay.NewRedisBrokerFromURL(redisURL, relay.RedisBrokerConfig{Prefix: prefix, Logger: log})
		if err != nil {
			return err
		}
		b = rb
	}
	defer b.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := relay.HubConfig{QueueSize: queue, MaxStreamsPerNode: 1 << 20, DetachHTTP1: detach}
	if detach && epoll {
		w, err := netpoll.New()
		if err != nil {
			return err
		}
		defer w.Close()
		cfg.CloseWatcher = w
		cfg.LeanStreams = lean
	}
	hub := relay.NewHub(b, cfg, log, nil)
	if err := hub.Start(ctx); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		hub.ServeStream(w, r, r.URL.Query().Get("u"), time.Time{})
	})
	mux.HandleFunc("POST /join", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		from, _ := strconv.Atoi(q.Get("from"))
		n, _ := strconv.Atoi(q.Get("n"))
		for i := from; i < from+n; i++ {
			if err := hub.Join(r.Context(), q.Get("room"), q.Get("prefix")+strconv.Itoa(i)); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
	})
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		var body json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if err := hub.PublishToRoom(r.Context(), r.URL.Query().Get("room"), relay.Event{Type: "B", Data: body},
			relay.PublishOptions{}); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.Handle("GET /debug/pprof/heap", pprof.Handler("heap"))
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
			debug.FreeOSMemory()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = json.NewEncoder(w).Encode(serverStats{Streams: hub.Streams(), Goroutines: runtime.NumGoroutine(),
			HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Sys: ms.Sys, RSS: rss()})
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hub.Shutdown(sctx)
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "relaybench: serving on %s (broker %T)\n", l.Addr(), b)
	if err := srv.Serve(l); err != http.ErrServerClosed {
		return err
	}
	return nil
}

type serverStats struct {
	Streams    int    `json:"streams"`
	Goroutines int    `json:"goroutines"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	RSS        uint64 `json:"rss"`
}

// rss reads the resident set size from /proc (0 elsewhere).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}
