// Command streamload measures suparelay the way production runs it: the full server (cmd/suparelay with the front
// door, Redis, the real Supabase stack), real users in the database, @supabase/ssr session cookies with ES256
// tokens, one SSE stream per user plus the keep-alive connection its join request left open, and real sends through
// /api/messages/send (one ciphertext per member, as the frontend sends). It reports the server's memory per stream
// as an operator reads it (RSS of the process from /proc, divided by the streams) and, with the server's opt-in
// pprof listener, heap, stacks and goroutines; with -rate it then sends for -duration and samples the same numbers
// (the soak). Streams are spread over several client processes (itself, re-executed) so that no process holds
// more than 20,000 files. Everything is bounded and goes to loopback only (source addresses 127.0.0.2 and up).
//
//	streamload -url http://127.0.0.1:18080 -pid $(pgrep -n suparelay) -pprof http://127.0.0.1:16060 -streams 10000
//
// bench/streamload.sh starts the server in the production configuration and runs this.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qryptchat/suparelay/middleware"
)

func main() {
	var (
		base      = flag.String("url", "http://127.0.0.1:18080", "server base URL (loopback)")
		publicURL = flag.String("public-url", "", "the server's SUPABASE_PUBLIC_URL (names the cookie; default -url)")
		pid       = flag.Int("pid", 0, "server process id (RSS from /proc/<pid>)")
		pprofURL  = flag.String("pprof", "", "server's DEBUG_PPROF_ADDR as a URL (heap, stacks, goroutines)")
		dbURL     = flag.String("db", os.Getenv("SUPARELAY_TEST_DATABASE_URL"), "stack database (superuser) for the users")
		streams   = flag.Int("streams", 1000, "streams (one user each)")
		roomSize  = flag.Int("room-size", 100, "users per group conversation")
		procs     = flag.Int("procs", 0, "client processes (0: enough for ≤ 9,000 streams each)")
		srcIPs    = flag.Int("srcips", 16, "source addresses 127.0.0.2..")
		conc      = flag.Int("dial-concurrency", 32, "streams being set up at once (per process)")
		keepAlive = flag.Bool("keepalive", true, "keep each join request's connection open and idle")
		rate      = flag.Float64("rate", 0, "sends/s through /api/messages/send after connecting (0: none)")
		duration  = flag.Duration("duration", time.Minute, "send phase length (≤ 60m)")
		sample    = flag.Duration("sample", time.Minute, "print the server's state this often during the send phase")
		sampleGC  = flag.Bool("sample-gc", false, "collect garbage before each sample (live heap instead of heap in use)")
		ctBytes   = flag.Int("ciphertext-bytes", 300, "bytes of each member's ciphertext in a send")
		hold      = flag.Duration("hold", 0, "keep the streams open this long after connecting, before sending (≤ 10m)")
		profDir   = flag.String("profiles", "", "save heap and goroutine profiles after connecting here")
		settle    = flag.Duration("settle", 20*time.Second, "after connecting, wait this long (a GC every 2 s) before measuring")

		childMode = flag.Bool("child", false, "internal: hold streams [from,to) of -setup")
		setupFile = flag.String("setup", "", "internal: the setup file")
		from      = flag.Int("from", 0, "internal")
		to        = flag.Int("to", 0, "internal")
	)
	flag.Parse()
	u, err := url.Parse(*base)
	if err != nil || !strings.HasPrefix(u.Hostname(), "127.") || u.Port() == "" {
		fail(fmt.Errorf("-url must be http://127.x.x.x:port, got %q", *base))
	}
	if *pprofURL != "" {
		if p, err := url.Parse(*pprofURL); err != nil || !strings.HasPrefix(p.Hostname(), "127.") {
			fail(fmt.Errorf("-pprof must be a loopback URL"))
		}
	}
	if *srcIPs < 1 || *srcIPs > 250 {
		fail(fmt.Errorf("-srcips: 1..250"))
	}
	if *childMode {
		s, err := readSetup(*setupFile)
		if err != nil {
			fail(err)
		}
		c := &child{s: s, base: *base, host: u.Host, srcIPs: *srcIPs, keepAlive: *keepAlive, timeout: 60 * time.Second}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := runChild(ctx, c, *from, min(*to, len(s.Users)), max(*conc, 1)); err != nil {
			fail(err)
		}
		return
	}
	perProc := 9000
	if !*keepAlive {
		perProc = 18000
	}
	if *procs <= 0 {
		*procs = (*streams + perProc - 1) / perProc
	}
	if *streams < 1 || *streams > 20000 || (*streams+*procs-1) / *procs > perProc || *procs > 8 ||
		*duration > time.Hour || *hold > 10*time.Minute || *rate < 0 || *rate > 200 || *roomSize < 2 || *roomSize > 1000 {
		fail(fmt.Errorf("bounds: 1 ≤ streams ≤ 20,000, ≤ %d per process, ≤ 8 processes, duration ≤ 60m, hold ≤ 10m, "+
			"rate ≤ 200/s, 2 ≤ room-size ≤ 1,000", perProc))
	}
	if *dbURL == "" {
		fail(fmt.Errorf("-db (or SUPARELAY_TEST_DATABASE_URL) is required: the users are created in the stack database"))
	}
	if *pid == 0 {
		fail(fmt.Errorf("-pid is required (the server process, for its RSS)"))
	}
	if *publicURL == "" {
		*publicURL = *base
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := parent{base: *base, pid: *pid, pprof: *pprofURL, ctBytes: *ctBytes}
	if err := p.run(ctx, runOpts{dbURL: *dbURL, cookie: middleware.CookieNameFromURL(*publicURL), streams: *streams,
		roomSize: *roomSize, procs: *procs, srcIPs: *srcIPs, conc: *conc, keepAlive: *keepAlive, rate: *rate,
		duration: *duration, sample: *sample, hold: *hold, profDir: *profDir, settle: *settle, sampleGC: *sampleGC}); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "streamload:", err)
	os.Exit(1)
}

type runOpts struct {
	dbURL, cookie, profDir         string
	streams, roomSize, procs       int
	srcIPs, conc                   int
	keepAlive, sampleGC            bool
	rate                           float64
	duration, sample, hold, settle time.Duration
}

type parent struct {
	base, pprof string
	pid         int
	ctBytes     int
	s           *setup
}

func (p *parent) run(ctx context.Context, o runOpts) error {
	fmt.Printf("loadavg at start: %s\n", loadavg())
	t0 := time.Now()
	ttl := o.duration + o.hold + 2*time.Hour
	s, err := createUsers(ctx, o.dbURL, o.streams, o.roomSize, ttl)
	if err != nil {
		return err
	}
	s.CookieName = o.cookie
	p.s = s
	fmt.Printf("created %d users in %d group conversations of up to %d members in %v (cookie %s, %d bytes)\n",
		len(s.Users), len(s.Rooms), o.roomSize, time.Since(t0).Round(time.Millisecond), s.CookieName, len(s.Users[0].Cookie))
	dir, err := os.MkdirTemp("", "streamload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	setupPath := filepath.Join(dir, "setup.json")
	raw, _ := json.Marshal(s)
	if err := os.WriteFile(setupPath, raw, 0o600); err != nil {
		return err
	}

	base, err := readState(ctx, p.pid, p.pprof, true)
	if err != nil {
		return fmt.Errorf("server state: %w", err)
	}
	fmt.Printf("server before: %s\n", base)

	self, _ := os.Executable()
	per := (o.streams + o.procs - 1) / o.procs
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines chan string
	}
	var children []proc
	defer func() {
		for _, c := range children {
			_ = c.stdin.Close()
		}
	}()
	t1 := time.Now()
	for k := 0; k < o.procs; k++ {
		cmd := exec.CommandContext(ctx, self, "-child", "-setup", setupPath, "-url", p.base,
			"-from", strconv.Itoa(k*per), "-to", strconv.Itoa(min((k+1)*per, o.streams)),
			"-srcips", strconv.Itoa(o.srcIPs), "-dial-concurrency", strconv.Itoa(o.conc),
			"-keepalive="+strconv.FormatBool(o.keepAlive))
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return err
		}
		c := proc{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				c.lines <- sc.Text()
			}
			close(c.lines)
		}()
		children = append(children, c)
	}
	connected := 0
	for k, c := range children {
		select {
		case line, ok := <-c.lines:
			if !ok || !strings.HasPrefix(line, "READY") {
				return fmt.Errorf("client %d: %q", k, line)
			}
			fmt.Printf("client %d: %s\n", k, line)
			connected += field(line, "connected")
		case <-time.After(15 * time.Minute):
			return fmt.Errorf("client %d not ready after 15 minutes", k)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	connDur := time.Since(t1)
	fmt.Printf("connected %d streams (+ joins) in %v: %.0f streams/s; loadavg %s\n", connected,
		connDur.Round(time.Millisecond), float64(connected)/connDur.Seconds(), loadavg())
	first, err := readState(ctx, p.pid, p.pprof, true)
	if err != nil {
		return err
	}
	fmt.Printf("server right after connecting (one GC): %s\n", first)
	// A server that has been up a while has run many GCs: idle goroutines' stacks have shrunk (each GC halves a
	// stack using under a quarter of it) and the scavenger has returned some freed pages. Measure that state too.
	for t := time.Now(); time.Since(t) < o.settle; {
		time.Sleep(2 * time.Second)
		if _, err := readState(ctx, p.pid, p.pprof, true); err != nil {
			return err
		}
	}
	after, err := readState(ctx, p.pid, p.pprof, true)
	if err != nil {
		return err
	}
	fmt.Printf("server after %v settling: %s\n", o.settle, after)
	if n := float64(connected); n > 0 {
		per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / n / 1024 }
		for _, m := range []struct {
			name string
			st   serverState
		}{{"right after connecting", first}, {"settled", after}} {
			fmt.Printf("memory per stream (%s): RSS %.1f KiB; heap %.1f KiB, stacks %.1f KiB, Sys %.1f KiB; goroutines %.2f; fds %.2f\n",
				m.name, per(base.RSS, m.st.RSS), per(base.HeapInuse, m.st.HeapInuse), per(base.StackInuse, m.st.StackInuse),
				per(base.Sys, m.st.Sys), float64(m.st.Goroutines-base.Goroutines)/n, float64(m.st.FDs-base.FDs)/n)
		}
	}
	if o.profDir != "" && p.pprof != "" {
		if err := os.MkdirAll(o.profDir, 0o755); err != nil {
			return err
		}
		for name, q := range map[string]string{"heap.pb.gz": "heap?gc=1", "goroutines.txt": "goroutine?debug=1"} {
			body, err := get(ctx, p.pprof+"/debug/pprof/"+q)
			if err == nil {
				err = os.WriteFile(filepath.Join(o.profDir, name), []byte(body), 0o644)
			}
			if err != nil {
				fmt.Printf("profile %s: %v\n", name, err)
			}
		}
		fmt.Printf("profiles saved in %s\n", o.profDir)
	}
	if o.hold > 0 {
		fmt.Printf("holding %v\n", o.hold)
		select {
		case <-time.After(o.hold):
		case <-ctx.Done():
		}
		st, _ := readState(ctx, p.pid, p.pprof, true)
		fmt.Printf("server after holding: %s\n", st)
	}
	if o.rate > 0 && ctx.Err() == nil {
		p.soak(ctx, o, after)
	}
	var wg sync.WaitGroup
	for k, c := range children {
		_ = c.stdin.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for line := range c.lines {
				fmt.Printf("client %d: %s\n", k, line)
			}
			_ = c.cmd.Wait()
		}()
	}
	wg.Wait()
	children = nil
	fmt.Printf("loadavg at end: %s\n", loadavg())
	return nil
}

// field reads name=<int> from a READY/DONE line.
func field(line, name string) int {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func readSetup(path string) (*setup, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s setup
	return &s, json.Unmarshal(raw, &s)
}
