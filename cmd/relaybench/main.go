// Command relaybench load-tests the relay package on loopback: with -serve it runs a relay node (memory broker,
// or Redis with -redis) behind a trivial auth shim; without it, it opens N SSE streams against running nodes,
// joins them to rooms, publishes, and reports connect rate, server memory per stream, delivery latency
// percentiles and deliveries per second. Everything is bounded (stream count, duration) and goes to 127.0.0.0/8.
//
//	relaybench -serve -addr 127.0.0.1:8081
//	relaybench -url http://127.0.0.1:8081 -streams 19000 -room-size 10000 -big-events 10
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

func main() {
	var (
		serveMode = flag.Bool("serve", false, "run a relay node instead of the load client")
		addr      = flag.String("addr", "127.0.0.1:8081", "serve: listen address (loopback)")
		redisURL  = flag.String("redis", "", "serve: Redis URL (default: memory broker)")
		prefix    = flag.String("prefix", "relaybench:", "serve: Redis key prefix")
		queue     = flag.Int("queue", 0, "serve: per-stream queue size (0 = default)")
		detach    = flag.Bool("detach", false, "serve: HubConfig.DetachHTTP1 (lean hijacked streams)")
		lean      = flag.Bool("lean", true, "serve: with -detach and -epoll, live streams without a goroutine each (HubConfig.LeanStreams)")
		epoll     = flag.Bool("epoll", true, "serve: with -detach, notice hang-ups through one epoll watcher (HubConfig.CloseWatcher) instead of a reader goroutine per stream")

		urls      = flag.String("url", "http://127.0.0.1:8081", "client: node base URLs, comma-separated")
		streams   = flag.Int("streams", 1000, "client: streams to open (one user each)")
		roomSize  = flag.Int("room-size", 1000, "client: users per room")
		srcIPs    = flag.Int("srcips", 8, "client: spread connections over 127.0.0.2..(2+n-1)")
		dialConc  = flag.Int("dial-concurrency", 200, "client: concurrent connection attempts")
		bigEvents = flag.Int("big-events", 0, "client: single events published to room r0, one at a time")
		pubs      = flag.Int("publishers", 0, "client: concurrent publishers for the throughput phase")
		rate      = flag.Int("rate", 0, "client: total events/s published in the throughput phase")
		duration  = flag.Duration("duration", 10*time.Second, "client: throughput phase length (max 5m; 60m with -sample)")
		sample    = flag.Duration("sample", 0, "client: soak mode: print the server's RSS, heap and goroutines this often during the throughput phase, and their growth at the end")
		payload   = flag.Int("payload", 100, "client: payload padding bytes per event")
		hold      = flag.Duration("hold", 0, "client: keep streams open this long after the phases (max 5m)")
		offset    = flag.Int("user-offset", 0, "client: first user number (multiple of -room-size), for several clients")
	)
	flag.Parse()
	if *serveMode {
		if err := serve(*addr, *redisURL, *prefix, *queue, *detach, *epoll, *lean); err != nil {
			fmt.Fprintln(os.Stderr, "relaybench:", err)
			os.Exit(1)
		}
		return
	}
	list := strings.Split(*urls, ",")
	for _, u := range list {
		p, err := url.Parse(u)
		if err != nil || !strings.HasPrefix(p.Hostname(), "127.") && p.Hostname() != "localhost" {
			fmt.Fprintln(os.Stderr, "relaybench: only loopback targets are allowed:", u)
			os.Exit(2)
		}
	}
	maxDuration := 5 * time.Minute
	if *sample > 0 {
		maxDuration = time.Hour // a soak run: long on purpose, still bounded
	}
	if *streams > 19000*len(list) || *streams > 19000 || *duration > maxDuration || *hold > 5*time.Minute || *srcIPs < 1 || *srcIPs > 250 ||
		(*sample > 0 && *sample < time.Second) {
		fmt.Fprintln(os.Stderr, "relaybench: bounds: streams ≤ 19000 per client process, duration ≤ 5m (60m with -sample ≥ 1s), 1 ≤ srcips ≤ 250")
		os.Exit(2)
	}
	err := runClient(clientOpts{urls: list, streams: *streams, roomSize: max(*roomSize, 1), srcIPs: *srcIPs,
		dialConc: max(*dialConc, 1), bigEvents: *bigEvents, publishers: *pubs, rate: *rate, duration: *duration,
		payload: *payload, offset: *offset, hold: *hold, sample: *sample, statsURL: list[0] + "/stats", connTimeout: 30 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "relaybench:", err)
		os.Exit(1)
	}
}
