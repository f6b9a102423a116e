package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qryptchat/suparelay/internal/stampscan"
)

// browserHeaders are what Chromium sends with an EventSource request or a fetch besides Host and Cookie (≈450
// bytes): the server holds a stream's request for as long as the stream lives, so a bare request would measure less
// than a browser costs.
const browserHeaders = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nCache-Control: no-cache\r\n" +
	"sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\nsec-ch-ua-mobile: ?0\r\nsec-ch-ua-platform: \"Linux\"\r\n" +
	"Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\n"

// child holds streams [from, to) of the setup: for each, an SSE connection (GET /api/events with the session cookie)
// and, once CONNECTED arrived, a second connection that posts /api/conversations/join for the user's room and then
// stays open idle, as a browser's keep-alive connection does between the page's fetches. It prints one READY line
// when all are up and one DONE line with its counts when its stdin closes (the parent ended the run).
type child struct {
	s         *setup
	base      string // server base URL
	host      string // host:port
	srcIPs    int
	keepAlive bool
	timeout   time.Duration

	connected, failed, idleOpen, dropped, retries atomic.Int64
	delivered                                     atomic.Uint64
	lat                                           hist
}

func runChild(ctx context.Context, c *child, from, to, conc int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := from; i < to; i++ {
		sem <- struct{}{}
		ready := make(chan struct{})
		var once sync.Once
		done := func() { once.Do(func() { close(ready) }) }
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := c.stream(ctx, i, done); err != nil && ctx.Err() == nil {
				if c.failed.Add(1) <= 3 {
					fmt.Fprintf(os.Stderr, "stream %d: %v\n", i, err)
				}
			}
			done()
		}(i)
		go func() { <-ready; <-sem }()
	}
	for range conc { // every stream is up (or failed) once all slots are free again
		sem <- struct{}{}
	}
	fmt.Printf("READY connected=%d failed=%d retries=%d idle=%d secs=%.1f\n", c.connected.Load(), c.failed.Load(),
		c.retries.Load(), c.idleOpen.Load(), time.Since(t0).Seconds())
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes our stdin at the end of the run
	n, q := c.lat.quantiles(0.5, 0.99, 1)
	fmt.Printf("DONE connected=%d failed=%d idle=%d dropped=%d delivered=%d latency_n=%d p50=%v p99=%v max=%v\n",
		c.connected.Load(), c.failed.Load(), c.idleOpen.Load(), c.dropped.Load(), c.delivered.Load(), n, q[0], q[1], q[2])
	cancel()
	return nil
}

func (c *child) dial(ctx context.Context, i int) (net.Conn, error) {
	d := net.Dialer{Timeout: c.timeout, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%c.srcIPs))}}
	return d.DialContext(ctx, "tcp", c.host)
}

// stream runs user i's SSE connection until ctx ends; ready is called once CONNECTED arrived and the join is done
// (or failed).
func (c *child) stream(ctx context.Context, i int, ready func()) error {
	// A 503 (the server's PostgREST gate shedding a burst of connects) is retried after its Retry-After, up to 20
	// times, as EventSource reconnects; every retry is counted.
	for attempt := 0; ; attempt++ {
		err := c.streamOnce(ctx, i, ready)
		var busy errBusy
		if !errors.As(err, &busy) || attempt == 20 {
			return err
		}
		c.retries.Add(1)
		select {
		case <-time.After(time.Duration(busy) + time.Duration(mrand.IntN(1000))*time.Millisecond):
		case <-ctx.Done():
			return nil
		}
	}
}

// errBusy is a 503 with its Retry-After.
type errBusy time.Duration

func (e errBusy) Error() string { return "503 (retry after " + time.Duration(e).String() + ")" }

func (c *child) streamOnce(ctx context.Context, i int, ready func()) error {
	u := c.s.Users[i]
	conn, err := c.dial(ctx, i)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fmt.Fprintf(conn, "GET /api/events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%sReferer: %s/chat\r\n"+
		"Cookie: %s=%s\r\n\r\n", c.host, browserHeaders, c.base, c.s.CookieName, u.Cookie)
	br := bufio.NewReaderSize(conn, 2048)
	_ = conn.SetReadDeadline(time.Now().Add(c.timeout))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return errBusy(time.Duration(max(secs, 1)) * time.Second)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("events: %s %s", resp.Status, b)
	}
	sc := stampscan.New() // only CONNECTED and each event's "t":<ns> matter
	for {
		connectedNow, err := sc.Read(br, func(t int64, ok bool) {
			if ok {
				c.lat.add(time.Duration(time.Now().UnixNano() - t))
			}
			c.delivered.Add(1)
		})
		if connectedNow {
			_ = conn.SetReadDeadline(time.Time{})
			c.connected.Add(1)
			go func() {
				defer ready()
				if err := c.join(ctx, i); err != nil && ctx.Err() == nil && c.failed.Add(1) <= 3 {
					fmt.Fprintf(os.Stderr, "join %d: %v\n", i, err)
				}
			}()
		}
		if err != nil {
			if !sc.Connected() {
				return fmt.Errorf("before CONNECTED: %w", err)
			}
			if ctx.Err() == nil {
				c.dropped.Add(1)
			}
			return nil
		}
	}
}

// join posts /api/conversations/join for the user's room on a second connection and (with keepAlive) leaves that
// connection open and idle until the server closes it (IdleTimeout) or the run ends.
func (c *child) join(ctx context.Context, i int) error {
	// A 503 (the PostgREST gate shedding a burst) is retried after its Retry-After, up to 20 times, as a measurement
	// needs every stream joined; the frontend itself does not retry.
	for attempt := 0; ; attempt++ {
		err := c.joinOnce(ctx, i)
		var busy errBusy
		if !errors.As(err, &busy) || attempt == 20 {
			return err
		}
		c.retries.Add(1)
		select {
		case <-time.After(time.Duration(busy) + time.Duration(mrand.IntN(1000))*time.Millisecond):
		case <-ctx.Done():
			return nil
		}
	}
}

func (c *child) joinOnce(ctx context.Context, i int) error {
	u := c.s.Users[i]
	conn, err := c.dial(ctx, i+1)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"conversationId": c.s.Rooms[u.Room]})
	fmt.Fprintf(conn, "POST /api/conversations/join HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nOrigin: %s\r\n%sReferer: %s/chat\r\nCookie: %s=%s\r\n\r\n%s",
		c.host, len(body), c.base, browserHeaders, c.base, c.s.CookieName, u.Cookie, body)
	br := bufio.NewReaderSize(conn, 1024)
	_ = conn.SetReadDeadline(time.Now().Add(c.timeout))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		conn.Close()
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return errBusy(time.Duration(max(secs, 1)) * time.Second)
	}
	if resp.StatusCode != 200 {
		conn.Close()
		return fmt.Errorf("join: %s %s", resp.Status, b)
	}
	if !c.keepAlive {
		conn.Close()
		return nil
	}
	_ = conn.SetReadDeadline(time.Time{})
	c.idleOpen.Add(1)
	go func() {
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		_, _ = br.ReadByte() // returns when the server closes the idle connection
		c.idleOpen.Add(-1)
	}()
	return nil
}

// hist is a latency histogram with 1 ms buckets up to 60 s.
type hist struct{ b [60001]atomic.Uint64 }

func (h *hist) add(d time.Duration) { h.b[min(max(int(d/time.Millisecond), 0), len(h.b)-1)].Add(1) }

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
				out[j] = time.Duration(i+1) * time.Millisecond
				break
			}
		}
	}
	return n, out
}
