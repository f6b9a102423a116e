package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qryptchat/suparelay/internal/stampscan"
)

type clientOpts struct {
	urls        []string
	streams     int
	roomSize    int
	srcIPs      int
	dialConc    int
	bigEvents   int
	publishers  int
	rate        int
	duration    time.Duration
	payload     int
	statsURL    string
	connTimeout time.Duration
	hold        time.Duration // keep the streams open this long after the phases
	offset      int           // first user number (b<offset>…), a multiple of roomSize, so client processes do not overlap
	sample      time.Duration // soak mode: server stats this often during the throughput phase (0: off)
}

// hist is a latency histogram with 100 µs buckets up to 10 s (the last bucket holds everything above).
type hist struct{ b [100001]atomic.Uint64 }

func (h *hist) add(d time.Duration) {
	i := int(d / (100 * time.Microsecond))
	if i < 0 {
		i = 0
	}
	h.b[min(i, len(h.b)-1)].Add(1)
}

func (h *hist) reset() {
	for i := range h.b {
		h.b[i].Store(0)
	}
}

func (h *hist) quantiles(qs ...float64) (n uint64, out []time.Duration) {
	for i := range h.b {
		n += h.b[i].Load()
	}
	out = make([]time.Duration, len(qs))
	for j, q := range qs {
		target, seen := uint64(float64(n)*q+0.5), uint64(0)
		for i := range h.b {
			seen += h.b[i].Load()
			if seen >= target && target > 0 {
				out[j] = time.Duration(i+1) * 100 * time.Microsecond
				break
			}
		}
	}
	return n, out
}

type bench struct {
	o          clientOpts
	delivered  atomic.Uint64
	connected  atomic.Int64
	dropped    atomic.Int64
	lat        hist
	lastArrive atomic.Int64
}

func runClient(o clientOpts) error {
	bn := &bench{o: o}
	base := fetchStats(o.statsURL, true)
	fmt.Printf("server before: streams=%d heap+stack=%.1f MiB rss=%.1f MiB\n", base.Streams,
		mib(base.HeapInuse+base.StackInuse), mib(base.RSS))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	sem := make(chan struct{}, o.dialConc)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < o.streams; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ready := make(chan struct{})
			go func() {
				if err := bn.stream(ctx, i, ready); err != nil && ctx.Err() == nil {
					if failed.Add(1) <= 3 {
						fmt.Fprintf(os.Stderr, "stream %d: %v\n", i, err)
					}
				}
				select {
				case <-ready:
				default:
					close(ready)
				}
			}()
			<-ready
			<-sem
		}(i)
	}
	wg.Wait()
	connDur := time.Since(start)
	fmt.Printf("connected %d streams (%d failed) in %v: %.0f streams/s\n", bn.connected.Load(), failed.Load(),
		connDur.Round(time.Millisecond), float64(bn.connected.Load())/connDur.Seconds())
	after := fetchStats(o.statsURL, true)
	n := float64(after.Streams - base.Streams)
	if n > 0 {
		fmt.Printf("server after: streams=%d goroutines=%d heap+stack=%.1f MiB rss=%.1f MiB\n", after.Streams,
			after.Goroutines, mib(after.HeapInuse+after.StackInuse), mib(after.RSS))
		fmt.Printf("server memory per stream: heap+stack %.1f KiB (heap %.1f, stack %.1f), RSS %.1f KiB\n",
			float64(after.HeapInuse+after.StackInuse-base.HeapInuse-base.StackInuse)/n/1024,
			float64(after.HeapInuse-base.HeapInuse)/n/1024, float64(after.StackInuse-base.StackInuse)/n/1024,
			float64(int64(after.RSS)-int64(base.RSS))/n/1024)
	}

	rooms := (o.streams + o.roomSize - 1) / o.roomSize
	for r := 0; r < rooms; r++ {
		n := min(o.roomSize, o.streams-r*o.roomSize)
		u := fmt.Sprintf("%s/join?room=r%d&prefix=b&from=%d&n=%d", o.urls[0], o.offset/o.roomSize+r,
			o.offset+r*o.roomSize, n)
		if err := post(u, nil); err != nil {
			return fmt.Errorf("join: %w", err)
		}
	}
	fmt.Printf("joined %d rooms of up to %d members\n", rooms, o.roomSize)
	time.Sleep(500 * time.Millisecond) // let membership announcements reach every node

	if o.bigEvents > 0 {
		bn.lat.reset()
		size := uint64(min(o.roomSize, o.streams))
		var total time.Duration
		for e := 0; e < o.bigEvents; e++ {
			before := bn.delivered.Load()
			t0 := time.Now()
			if err := bn.publish(o.offset/o.roomSize, o.urls[e%len(o.urls)]); err != nil {
				return err
			}
			for bn.delivered.Load() < before+size && time.Since(t0) < 10*time.Second {
				time.Sleep(time.Millisecond)
			}
			total += time.Since(t0)
			time.Sleep(200 * time.Millisecond)
		}
		cnt, q := bn.lat.quantiles(0.5, 0.95, 0.99, 1)
		fmt.Printf("one event to a %d-member room, %d events: %d deliveries; latency p50=%v p95=%v p99=%v max=%v; "+
			"mean time to reach all=%v\n", size, o.bigEvents, cnt, q[0], q[1], q[2], q[3], total/time.Duration(o.bigEvents))
	}

	if o.publishers > 0 && o.rate > 0 {
		bn.lat.reset()
		before := bn.delivered.Load()
		t0 := time.Now()
		bn.lastArrive.Store(t0.UnixNano())
		var pwg sync.WaitGroup
		perPub := float64(o.rate) / float64(o.publishers)
		var sent atomic.Int64
		soakDone := make(chan struct{})
		if o.sample > 0 {
			go bn.soakSamples(t0, &sent, soakDone)
		}
		for p := 0; p < o.publishers; p++ {
			pwg.Add(1)
			go func(p int) {
				defer pwg.Done()
				// Open loop: a publish is fired on schedule even if earlier ones are still in flight (up to 64).
				interval := time.Duration(float64(time.Second) / perPub)
				next := time.Now()
				inflight := make(chan struct{}, 64)
				var iwg sync.WaitGroup
				for k := 0; time.Since(t0) < o.duration; k++ {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(interval)
					inflight <- struct{}{}
					iwg.Add(1)
					go func(k int) {
						defer iwg.Done()
						defer func() { <-inflight }()
						if err := bn.publish(o.offset/o.roomSize+rand.IntN(rooms), o.urls[(p+k)%len(o.urls)]); err == nil {
							sent.Add(1)
						}
					}(k)
				}
				iwg.Wait()
			}(p)
		}
		pwg.Wait()
		close(soakDone)
		// Wait for the tail to arrive (bounded).
		for i := 0; i < 50 && time.Since(time.Unix(0, bn.lastArrive.Load())) < 300*time.Millisecond; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		got := bn.delivered.Load() - before
		span := time.Duration(bn.lastArrive.Load() - t0.UnixNano())
		cnt, q := bn.lat.quantiles(0.5, 0.95, 0.99, 1)
		fmt.Printf("throughput: %d publishers, %d events sent in %v (%.0f/s), %d deliveries in %v = %.0f deliveries/s; "+
			"latency (%d samples) p50=%v p95=%v p99=%v max=%v; streams dropped=%d\n",
			o.publishers, sent.Load(), o.duration, float64(sent.Load())/o.duration.Seconds(), got, span.Round(time.Millisecond),
			float64(got)/span.Seconds(), cnt, q[0], q[1], q[2], q[3], bn.dropped.Load())
		if o.sample > 0 {
			end := fetchStats(o.statsURL, true)
			pct := func(a, b uint64) float64 { return 100 * (float64(b) - float64(a)) / float64(a) }
			fmt.Printf("soak: start (after connecting, GC) rss=%.1f MiB heap+stack=%.1f MiB goroutines=%d; "+
				"end (GC) rss=%.1f MiB heap+stack=%.1f MiB goroutines=%d; growth rss %+.1f%% heap+stack %+.1f%% goroutines %+d\n",
				mib(after.RSS), mib(after.HeapInuse+after.StackInuse), after.Goroutines,
				mib(end.RSS), mib(end.HeapInuse+end.StackInuse), end.Goroutines,
				pct(after.RSS, end.RSS), pct(after.HeapInuse+after.StackInuse, end.HeapInuse+end.StackInuse),
				end.Goroutines-after.Goroutines)
		}
	}
	if o.hold > 0 {
		fmt.Printf("holding %d streams for %v (dropped so far: %d)\n", bn.connected.Load(), o.hold, bn.dropped.Load())
		time.Sleep(o.hold)
		fmt.Printf("released; dropped while held: %d\n", bn.dropped.Load())
	}
	cancel()
	return nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// stream opens one SSE stream over a raw TCP connection from 127.0.0.<2+i%srcIPs> (so more than one source
// address's worth of ephemeral ports is available) and counts deliveries and their latency.
func (bn *bench) stream(ctx context.Context, i int, ready chan struct{}) error {
	base := bn.o.urls[i%len(bn.o.urls)]
	u, _ := url.Parse(base)
	d := net.Dialer{Timeout: bn.o.connTimeout,
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%bn.o.srcIPs))}}
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	fmt.Fprintf(c, "GET /events?u=b%d HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", bn.o.offset+i, u.Host)
	br := bufio.NewReaderSize(c, 2048)
	_ = c.SetReadDeadline(time.Now().Add(bn.o.connTimeout))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %s", resp.Status)
	}
	// Only CONNECTED and each event's "t":<ns> matter (internal/stampscan: raw bytes, no chunk or line decoding).
	sc := stampscan.New()
	for {
		connectedNow, err := sc.Read(br, func(t int64, ok bool) {
			now := time.Now().UnixNano()
			if ok {
				bn.lat.add(time.Duration(now - t))
			}
			bn.delivered.Add(1)
			bn.lastArrive.Store(now)
		})
		if connectedNow {
			_ = c.SetReadDeadline(time.Time{})
			bn.connected.Add(1)
			close(ready)
		}
		if err != nil {
			if ctx.Err() == nil && sc.Connected() {
				bn.dropped.Add(1)
			}
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

var pubClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func (bn *bench) publish(room int, base string) error {
	body := fmt.Sprintf(`{"t":%d,"p":%q}`, time.Now().UnixNano(), strings.Repeat("x", bn.o.payload))
	return post(fmt.Sprintf("%s/publish?room=r%d", base, room), []byte(body))
}

func post(u string, body []byte) error {
	resp, err := pubClient.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("POST %s: %s", u, resp.Status)
	}
	return nil
}

func fetchStats(u string, gc bool) serverStats {
	if gc {
		u += "?gc=1"
	}
	var s serverStats
	resp, err := pubClient.Get(u)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stats: %v\n", err)
		return s
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&s)
	return s
}

// soakSamples prints the server's state every o.sample until done: a soak run's record of whether memory, heap or
// goroutines creep up under a steady load.
func (bn *bench) soakSamples(t0 time.Time, sent *atomic.Int64, done <-chan struct{}) {
	t := time.NewTicker(bn.o.sample)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		st := fetchStats(bn.o.statsURL, false)
		fmt.Printf("soak t=%v streams=%d goroutines=%d heap+stack=%.1f MiB rss=%.1f MiB sent=%d delivered=%d dropped=%d\n",
			time.Since(t0).Round(time.Second), st.Streams, st.Goroutines, mib(st.HeapInuse+st.StackInuse), mib(st.RSS),
			sent.Load(), bn.delivered.Load(), bn.dropped.Load())
	}
}
