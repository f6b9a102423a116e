package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxStepSlots bounds the steps of one server run whose deliveries the streams tell apart (slot 0 is the warm-up).
const maxStepSlots = 64

// receipts is what the streams of one server run saw: per step, the send→receipt latency of every NEW_MESSAGE
// delivery and their count. Each send carries its step and its send time in its metadata, so a late delivery of
// one step never counts into the next.
type receipts struct {
	lat        [maxStepSlots]hist
	delivered  [maxStepSlots]atomic.Uint64
	lastArrive atomic.Int64 // unix ns of the latest delivery of any step
	dropped    atomic.Int64 // streams that ended while the run still wanted them
	retries    atomic.Int64 // connect attempts refused for load (503, 429) and retried
}

// marker is the metadata key a benchmark send carries: {"cmpbench":"<step>.<unix µs>"}. Microseconds since the
// epoch stay below 2^53, so the original server's JSON round trip (JavaScript numbers) could not round them even
// as a number; as a string nothing can.
const marker = "cmpbench"

func markerValue(step int, t time.Time) string {
	return strconv.Itoa(step) + "." + strconv.FormatInt(t.UnixMicro(), 10)
}

var markerKey = []byte(`"` + marker + `"`)

// parseMarker finds the marker in an event's data line (PostgreSQL's jsonb output puts a space after the colon;
// a JavaScript serializer does not) and returns its step and send time.
func parseMarker(line []byte) (step int, sent time.Time, ok bool) {
	i := bytes.Index(line, markerKey)
	if i < 0 {
		return 0, time.Time{}, false
	}
	rest := line[i+len(markerKey):]
	rest = bytes.TrimLeft(rest, " :")
	if len(rest) == 0 || rest[0] != '"' {
		return 0, time.Time{}, false
	}
	rest = rest[1:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return 0, time.Time{}, false
	}
	s, us, found := bytes.Cut(rest[:end], []byte("."))
	if !found {
		return 0, time.Time{}, false
	}
	st, err1 := strconv.Atoi(string(s))
	u, err2 := strconv.ParseInt(string(us), 10, 64)
	if err1 != nil || err2 != nil || st < 0 || st >= maxStepSlots {
		return 0, time.Time{}, false
	}
	return st, time.UnixMicro(u), true
}

// streamSpec is one SSE stream to open: whose cookie, from which loopback source address.
type streamSpec struct {
	base, cookieName, cookie string
	src                      net.IP
	xff                      string
}

// openStream opens GET /api/events as EventSource does (the session cookie, no Authorization header), waits for
// CONNECTED (ready is closed then, or with an error), and then counts NEW_MESSAGE receipts until ctx ends.
func openStream(ctx context.Context, sp streamSpec, rc *receipts, ready chan<- error) {
	signal := func(err error) {
		if ready != nil {
			ready <- err
			ready = nil
		}
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: sp.src}}).DialContext,
		DisableCompression:    true,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          1,
	}
	defer tr.CloseIdleConnections()
	var res *http.Response
	// A refusal for load (503, 429) is retried as the browser's chat store retries a failed EventSource: after
	// 1, 2, 4, 8 and 16 s (or Retry-After, when shorter), five times at most.
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, "GET", sp.base+"/api/events", nil)
		if err != nil {
			signal(err)
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Cookie", sp.cookieName+"="+sp.cookie)
		req.Header.Set("X-Forwarded-For", sp.xff)
		res, err = tr.RoundTrip(req)
		if err != nil {
			signal(err)
			return
		}
		if res.StatusCode == http.StatusOK {
			break
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		res.Body.Close()
		retryable := res.StatusCode == http.StatusServiceUnavailable || res.StatusCode == http.StatusTooManyRequests
		if !retryable || attempt == 5 {
			signal(fmt.Errorf("events: %d %s (after %d retries)", res.StatusCode, bytes.TrimSpace(b), attempt))
			return
		}
		rc.retries.Add(1)
		wait := time.Second << attempt
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s >= 0 && time.Duration(s)*time.Second < wait {
			wait = time.Duration(s) * time.Second
		}
		select {
		case <-ctx.Done():
			signal(ctx.Err())
			return
		case <-time.After(wait):
		}
	}
	defer res.Body.Close()
	br := bufio.NewReaderSize(res.Body, 32<<10)
	var event []byte
	connected, skipping := false, false
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			skipping = true // a line longer than the buffer: no event of ours is; skip to its end
			continue
		}
		if err != nil {
			if !connected {
				signal(fmt.Errorf("events ended before CONNECTED: %v", err))
			} else if ctx.Err() == nil {
				rc.dropped.Add(1)
			}
			return
		}
		if skipping {
			skipping = false
			continue
		}
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			event = append(event[:0], bytes.TrimSpace(line[len("event: "):])...)
		case bytes.HasPrefix(line, []byte("data: ")):
			switch string(event) {
			case "CONNECTED":
				if !connected {
					connected = true
					signal(nil)
				}
			case "NEW_MESSAGE":
				now := time.Now()
				if step, sent, ok := parseMarker(line); ok {
					rc.lat[step].add(now.Sub(sent))
					rc.delivered[step].Add(1)
					rc.lastArrive.Store(now.UnixNano())
				}
			}
		}
	}
}

// streamSet is the open streams of one server run.
type streamSet struct {
	rc     receipts
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// connectAll opens every stream, at most conc at once, and returns how many reached CONNECTED and how long that
// took; the first few errors are returned as examples.
func connectAll(parent context.Context, specs []streamSpec, conc int) (ss *streamSet, ok int, took time.Duration, errs []error) {
	ctx, cancel := context.WithCancel(parent)
	ss = &streamSet{cancel: cancel}
	sem := make(chan struct{}, max(conc, 1))
	var mu sync.Mutex
	var waiters sync.WaitGroup
	start := time.Now()
	for _, sp := range specs {
		sem <- struct{}{}
		ready := make(chan error, 1)
		ss.wg.Add(1)
		go func() { defer ss.wg.Done(); openStream(ctx, sp, &ss.rc, ready) }()
		waiters.Add(1)
		go func() {
			defer waiters.Done()
			err := <-ready
			<-sem
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else if len(errs) < 3 {
				errs = append(errs, err)
			} else {
				errs = append(errs[:3], fmt.Errorf("… and more"))
			}
		}()
	}
	waiters.Wait()
	return ss, ok, time.Since(start), errs
}

// close ends every stream and waits (bounded) for their goroutines.
func (ss *streamSet) close() {
	ss.cancel()
	done := make(chan struct{})
	go func() { ss.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}
