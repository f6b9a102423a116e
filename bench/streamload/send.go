package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// soak sends at o.rate for o.duration, open loop (a send is fired on schedule even while earlier ones are in
// flight, up to 64), each by a random member of a random room with one ciphertext per member, and prints the
// server's state every o.sample and its growth from start (the state right after connecting) to the end.
func (p *parent) soak(ctx context.Context, o runOpts, start serverState) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}).DialContext}
	client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	defer tr.CloseIdleConnections()
	var ok, failed, expected atomic.Int64
	var lat hist
	interval := time.Duration(float64(time.Second) / o.rate)
	t0 := time.Now()
	fmt.Printf("soak: %.1f sends/s for %v; start %s; loadavg %s\n", o.rate, o.duration, start, loadavg())
	tick := time.NewTicker(o.sample)
	defer tick.Stop()
	inflight := make(chan struct{}, 64)
	var wg sync.WaitGroup
	next := time.Now()
	for time.Since(t0) < o.duration && ctx.Err() == nil {
		select {
		case <-tick.C:
			st, err := readState(ctx, p.pid, p.pprof, o.sampleGC)
			if err != nil {
				fmt.Printf("soak t=%v: %v\n", time.Since(t0).Round(time.Second), err)
			}
			n, q := lat.quantiles(0.5, 0.99)
			fmt.Printf("soak t=%v %s sends_ok=%d sends_failed=%d send_p50=%v send_p99=%v (%d) loadavg %s\n",
				time.Since(t0).Round(time.Second), st, ok.Load(), failed.Load(), q[0], q[1], n, loadavg())
		default:
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			room := mrand.IntN(len(p.s.Rooms))
			t := time.Now()
			if err := p.send(ctx, client, room); err != nil {
				if failed.Add(1) <= 5 {
					fmt.Printf("send: %v\n", err)
				}
				return
			}
			lat.add(time.Since(t))
			ok.Add(1)
			expected.Add(int64(len(p.s.Members[room])))
		}()
	}
	wg.Wait()
	time.Sleep(3 * time.Second) // the last deliveries
	end, _ := readState(ctx, p.pid, p.pprof, true)
	if o.profDir != "" && p.pprof != "" {
		// The end's heap next to the start's (saved after connecting): go tool pprof -diff_base shows what grew.
		if body, err := get(ctx, p.pprof+"/debug/pprof/heap?gc=1"); err == nil {
			_ = os.WriteFile(filepath.Join(o.profDir, "heap-end.pb.gz"), []byte(body), 0o644)
		}
	}
	pct := func(a, b uint64) float64 { return 100 * (float64(b) - float64(a)) / float64(a) }
	n, q := lat.quantiles(0.5, 0.95, 0.99, 1)
	fmt.Printf("soak end after %v: sends ok=%d failed=%d (%.2f/s), deliveries expected=%d; send latency p50=%v p95=%v p99=%v max=%v (%d)\n",
		time.Since(t0).Round(time.Second), ok.Load(), failed.Load(), float64(ok.Load())/time.Since(t0).Seconds(),
		expected.Load(), q[0], q[1], q[2], q[3], n)
	fmt.Printf("soak: start %s\nsoak: end   %s\nsoak: growth rss %+.1f%% heap_inuse %+.1f%% stack_inuse %+.1f%% goroutines %+d (%+.2f%%); loadavg %s\n",
		start, end, pct(start.RSS, end.RSS), pct(start.HeapInuse, end.HeapInuse), pct(start.StackInuse, end.StackInuse),
		end.Goroutines-start.Goroutines, 100*float64(end.Goroutines-start.Goroutines)/float64(max(start.Goroutines, 1)), loadavg())
}

// send posts one message into room as a random member: {conversationId, encryptedContents: {member: ciphertext},
// messageType, metadata}, the frontend's shape; metadata.t carries the send time for the streams' latency.
func (p *parent) send(ctx context.Context, client *http.Client, room int) error {
	members := p.s.Members[room]
	sender := p.s.Users[members[mrand.IntN(len(members))]]
	contents := make(map[string]string, len(members))
	raw := make([]byte, p.ctBytes*3/4)
	for _, m := range members {
		_, _ = rand.Read(raw)
		ct, _ := json.Marshal(map[string]string{"v": "3", "alg": "ML-KEM-1024+ChaCha20", "c": base64.StdEncoding.EncodeToString(raw)})
		contents[p.s.Users[m].ID] = string(ct)
	}
	body, _ := json.Marshal(map[string]any{"conversationId": p.s.Rooms[room], "encryptedContents": contents,
		"messageType": "text", "metadata": map[string]any{"t": time.Now().UnixNano()}})
	req, err := http.NewRequestWithContext(ctx, "POST", p.base+"/api/messages/send", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", p.base)
	req.Header.Set("Cookie", p.s.CookieName+"="+sender.Cookie)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != 200 {
		return fmt.Errorf("send: %s %s", resp.Status, b)
	}
	return nil
}
