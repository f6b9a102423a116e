package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// target is one server under test and the process its own CPU and memory are read from.
type target struct {
	name   string // "original" or "suparelay"
	base   string
	server procGroup
}

// runner holds what every server run shares: the room, its members, the send body, the stack's processes.
type runner struct {
	o          options
	room       string
	members    []*member // all of the room; the first o.streamUsers of them open streams
	cookieName string
	shared     []procGroup
	hz         float64
	bodyHead   []byte // the send body up to the marker's value
	xff        atomic.Uint64
}

// ciphertexts builds one realistic encrypted copy per member: the frontend sends, per recipient, the JSON string
// of an ML-KEM-1024 envelope (~2.1 KB of KEM ciphertext and the message, base64), so a send to a 201-member room
// carries ~490 KB. Each copy is distinct random base64, so no layer can compress or deduplicate it.
func ciphertexts(members []*member, copyBytes int) map[string]string {
	out := make(map[string]string, len(members))
	for _, m := range members {
		raw := make([]byte, copyBytes*3/4)
		_, _ = rand.Read(raw)
		b := base64.StdEncoding.EncodeToString(raw)
		// The envelope's keys around the payload, as the browser's JSON has them.
		env := fmt.Sprintf(`{"v":1,"alg":"ML-KEM-1024","kem":"%s","iv":"%s","ct":"%s"}`, b[:min(len(b), 2092)],
			b[min(len(b), 2092):min(len(b), 2108)], b[min(len(b), 2108):])
		out[m.id] = env
	}
	return out
}

func buildBodyHead(room string, contents map[string]string) []byte {
	c, _ := json.Marshal(contents)
	var b bytes.Buffer
	b.WriteString(`{"conversationId":"` + room + `","messageType":"text","encryptedContents":`)
	b.Write(c)
	b.WriteString(`,"metadata":{"` + marker + `":"`)
	return b.Bytes()
}

// nextXFF is a client address for one request. The original server limits /api requests per client address (60
// a minute, 30 per address and user agent), taking it from X-Forwarded-For as behind a proxy; a fresh address per
// request keeps that limiter from refusing a load that real users, each from their own address, would send.
// suparelay ignores the header (no trusted proxies) and runs without rate limits for this benchmark.
func (r *runner) nextXFF() string {
	c := r.xff.Add(1)
	return fmt.Sprintf("127.%d.%d.%d", 64+(c>>16)%64, (c>>8)%256, c%256)
}

// srcIP is the loopback source address of stream k (or sender k with base 30): each its own, as the brief of
// relaybench has it, so no single address runs out of ephemeral ports.
func srcIP(base byte, k int) net.IP {
	return net.IPv4(127, base, byte(k/250), byte(k%250+2))
}

func (r *runner) streamSpecs(t target) []streamSpec {
	var out []streamSpec
	for u := 0; u < r.o.streamUsers; u++ {
		for s := 0; s < r.o.streamsPerUser; s++ {
			k := u*r.o.streamsPerUser + s
			out = append(out, streamSpec{base: t.base, cookieName: r.cookieName, cookie: r.members[u].cookie,
				src: srcIP(20, k), xff: r.nextXFF()})
		}
	}
	return out
}

// post sends one JSON POST with m's session cookie and returns the status.
func (r *runner) post(ctx context.Context, hc *http.Client, t target, m *member, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", t.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", t.base)
	req.Header.Set("Cookie", r.cookieName+"="+m.cookie)
	req.Header.Set("X-Forwarded-For", r.nextXFF())
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, b, nil
}

func senderClient(k int) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: srcIP(30, k)}}).DialContext,
		MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second, DisableCompression: true,
	}}
}

// serverRun is one server's half of one run.
type serverRun struct {
	Server          string       `json:"server"`
	Run             int          `json:"run"`
	Streams         int          `json:"streams"`
	Connected       int          `json:"connected"`
	ConnectErrors   []string     `json:"connect_errors,omitempty"`
	ConnectSeconds  float64      `json:"connect_seconds"`
	ConnectRate     float64      `json:"connect_rate"`
	ConnectRetries  int64        `json:"connect_retries"`
	RSSBeforeKiB    int64        `json:"rss_before_kib"`
	RSSAfterKiB     int64        `json:"rss_after_kib"`
	MemPerStreamKiB float64      `json:"mem_per_stream_kib"`
	JoinFailures    int          `json:"join_failures"`
	WarmupReceipts  uint64       `json:"warmup_receipts"`
	Dropped         int64        `json:"streams_dropped"`
	LoadStart       string       `json:"loadavg_start"`
	Steps           []stepResult `json:"steps"`
}

// stepResult is one rate step of a server run.
type stepResult struct {
	Rate             float64            `json:"offered_per_s"`
	Seconds          float64            `json:"seconds"`
	Offered          int                `json:"offered"`
	OK               int                `json:"ok"`
	Failed           map[string]int     `json:"failed,omitempty"` // by status ("timeout" for no answer)
	ClientCapped     int                `json:"client_capped"`    // not sent: the in-flight bound was reached
	SendLatency      quantiles          `json:"send_latency"`
	Receipt          quantiles          `json:"receipt"`
	Deliveries       uint64             `json:"deliveries"`
	Expected         uint64             `json:"expected"`
	DeliveriesPerSec float64            `json:"deliveries_per_s"`
	CPUms            map[string]float64 `json:"cpu_ms_per_send"` // by process group, per 2xx send
	LoadStart        string             `json:"loadavg_start"`
	LoadEnd          string             `json:"loadavg_end"`
}

// runServer is one server's half of a run: open the streams, join them to the room, warm up, then each rate step.
func (r *runner) runServer(ctx context.Context, t target, run int, logf func(string, ...any)) (serverRun, error) {
	res := serverRun{Server: t.name, Run: run, LoadStart: loadAvg()}
	specs := r.streamSpecs(t)
	res.Streams = len(specs)
	hc := &http.Client{Timeout: 20 * time.Second}
	body, _ := json.Marshal(map[string]string{"conversationId": r.room})
	// One stream and one join first, then closed: a fresh server loads the code of these paths on first use, which
	// is not memory the streams hold.
	if pre, n, _, errs := connectAll(ctx, specs[:1], 1); n == 1 {
		_, _, _ = r.post(ctx, hc, t, r.members[0], "/api/conversations/join", body)
		pre.close()
	} else {
		pre.close()
		return res, fmt.Errorf("%s: the first stream did not connect: %v", t.name, errs)
	}
	time.Sleep(time.Second)
	res.RSSBeforeKiB = rssKiB(t.server.PID, t.server.Tree)
	ss, ok, took, errs := connectStreams(ctx, specs, r.o.dialConc, r.o.streamsPerProc)
	defer ss.close()
	res.Connected, res.ConnectSeconds = ok, took.Seconds()
	res.ConnectRate = float64(ok) / took.Seconds()
	res.ConnectRetries = ss.report(0).Retries
	for _, e := range errs {
		res.ConnectErrors = append(res.ConnectErrors, e.Error())
	}
	logf("%s run %d: %d/%d streams in %.1fs (%.0f/s, %d retries after 503/429) %v", t.name, run, ok, len(specs),
		took.Seconds(), res.ConnectRate, res.ConnectRetries, errs)
	if ok == 0 {
		return res, fmt.Errorf("%s: no stream connected: %v", t.name, errs)
	}

	// Join once per user, after every stream is open: the original drops a user from all rooms whenever any of
	// its connections closes, so joining earlier could be undone by a slow connect.
	var jwg sync.WaitGroup
	var jfail atomic.Int64
	sem := make(chan struct{}, 8)
	for u := 0; u < r.o.streamUsers; u++ {
		jwg.Add(1)
		sem <- struct{}{}
		go func() {
			defer jwg.Done()
			defer func() { <-sem }()
			if st, b, err := r.post(ctx, hc, t, r.members[u], "/api/conversations/join", body); err != nil || st != 200 {
				if jfail.Add(1) == 1 {
					logf("join: %d %s %v", st, b, err)
				}
			}
		}()
	}
	jwg.Wait()
	res.JoinFailures = int(jfail.Load())

	// Memory is read once the streams are open and joined, before any send: what the streams themselves hold.
	time.Sleep(2 * time.Second)
	res.RSSAfterKiB = rssKiB(t.server.PID, t.server.Tree)
	res.MemPerStreamKiB = float64(res.RSSAfterKiB-res.RSSBeforeKiB) / float64(ok)
	senders := make([]*http.Client, r.o.streamUsers)
	for i := range senders {
		senders[i] = senderClient(i)
	}
	defer func() {
		for _, c := range senders {
			c.CloseIdleConnections()
		}
	}()
	// Warm-up: one send, awaited at every stream (bounded): proves the joins took, and warms both servers' pools.
	r.step(ctx, t, ss, senders, 0, 1, time.Second, nil)
	res.WarmupReceipts = ss.report(0).Delivered
	logf("%s run %d: joined (%d failures), warm-up receipts %d/%d, RSS %d → %d KiB (%.1f KiB/stream)", t.name, run,
		res.JoinFailures, res.WarmupReceipts, ok, res.RSSBeforeKiB, res.RSSAfterKiB, res.MemPerStreamKiB)

	groups := append([]procGroup{t.server, {Name: "client", PID: selfPID(), Also: ss.pids()}}, r.shared...)
	for i, rate := range r.o.rates {
		if i+1 >= maxStepSlots {
			break
		}
		sr := r.step(ctx, t, ss, senders, i+1, rate, r.o.stepDuration, groups)
		sr.Expected = uint64(sr.OK) * uint64(ok)
		res.Steps = append(res.Steps, sr)
		logf("%s run %d: %g/s: ok %d/%d failed %v capped %d; receipts %d/%d p50 %.0f p95 %.0f p99 %.0f ms; send p50 %.0f p99 %.0f ms; %.0f deliveries/s; load %s",
			t.name, run, rate, sr.OK, sr.Offered, sr.Failed, sr.ClientCapped, sr.Deliveries, sr.Expected, sr.Receipt.P50,
			sr.Receipt.P95, sr.Receipt.P99, sr.SendLatency.P50, sr.SendLatency.P99, sr.DeliveriesPerSec, sr.LoadEnd)
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	res.Dropped = ss.report(0).Dropped
	return res, nil
}

// step offers sends at rate for dur, open loop: each send leaves on schedule whether or not earlier ones were
// answered (at most o.maxInflight at once; beyond that a send is counted as capped, not sent). Then it waits,
// bounded, for the answers and the receipts to come in, and charges the CPU each process used to the 2xx sends.
func (r *runner) step(ctx context.Context, t target, ss streamPool, senders []*http.Client, slot int, rate float64,
	dur time.Duration, groups []procGroup) stepResult {
	sr := stepResult{Rate: rate, Failed: map[string]int{}, LoadStart: loadAvg()}
	var sendLat hist
	var mu sync.Mutex
	var okN atomic.Int64
	before := sampleCPU(groups, r.hz)
	t0 := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	inflight := make(chan struct{}, r.o.maxInflight)
	var wg sync.WaitGroup
	for k, next := 0, t0; next.Sub(t0) < dur && ctx.Err() == nil; k, next = k+1, next.Add(interval) {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		sr.Offered++
		select {
		case inflight <- struct{}{}:
		default:
			sr.ClientCapped++
			continue
		}
		u := k % r.o.streamUsers
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			sent := time.Now()
			body := make([]byte, 0, len(r.bodyHead)+40)
			body = append(body, r.bodyHead...)
			body = append(body, markerValue(slot, sent)...)
			body = append(body, `"}}`...)
			st, _, err := r.post(ctx, senders[u], t, r.members[u], "/api/messages/send", body)
			sendLat.add(time.Since(sent))
			if err == nil && st == http.StatusOK {
				okN.Add(1)
				return
			}
			key := strconv.Itoa(st)
			if err != nil {
				key = "error"
			}
			mu.Lock()
			sr.Failed[key]++
			mu.Unlock()
		}()
	}
	wg.Wait() // bounded by the senders' 20 s timeout
	sr.OK = int(okN.Load())
	// Receipts: wait until none has arrived for a second, at most 30 s.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		last := time.Unix(0, ss.report(slot).Last)
		if time.Since(last) > time.Second {
			break
		}
	}
	after := sampleCPU(groups, r.hz)
	sr.Seconds = time.Since(t0).Seconds()
	rep := ss.report(slot)
	sr.Deliveries = rep.Delivered
	if last := time.Unix(0, rep.Last); last.After(t0) {
		sr.DeliveriesPerSec = float64(sr.Deliveries) / last.Sub(t0).Seconds()
	}
	sr.SendLatency = sendLat.summary()
	sr.Receipt = rep.latency()
	sr.CPUms = map[string]float64{}
	for _, g := range groups {
		if sr.OK > 0 {
			sr.CPUms[g.Name] = (after[g.Name] - before[g.Name]) * 1000 / float64(sr.OK)
		}
	}
	sr.LoadEnd = loadAvg()
	return sr
}
