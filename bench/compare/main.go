// Command compare benchmarks the ORIGINAL QryptChat Node server and suparelay side by side on one real stack
// (issue 13, item 4): the orig stack of scripts/stack.sh — an upgraded production database with the original
// server at its app port — serves both, so PostgreSQL, PostgREST, Supabase Auth and the gateway are the same for
// each; only the server differs. It signs a room's members in through the real Auth (the test phone block), opens
// their SSE streams to one server (each stream from its own loopback source address), joins them, and offers an
// open-loop send load with realistic bodies (one ciphertext per member) at each rate; then the same against the
// other server, interleaved run by run. It prints the table of issue 13 with ratios and writes results.json,
// table.md and an SVG chart of receipt latency against offered sends/s.
//
// Everything is bounded (streams, rates, step length, runs, a deadline for the whole invocation) and every
// address is loopback. Beyond -streams-per-process streams (a process may hold 20,000 open files) the streams are
// spread over worker processes of this binary. `make compare` is the one command: it brings the orig stack up when it is not.
//
//	go run ./bench/compare -members 201 -streams-per-user 5 -rates 5,10,20,40 -runs 2
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

type options struct {
	stackDir       string
	members        int
	streamUsers    int
	streamsPerUser int
	rates          []float64
	stepDuration   time.Duration
	runs           int
	copyBytes      int
	dialConc       int
	maxInflight    int
	redis          bool
	originalStack  bool
	streamsPerProc int
	servers        []string
	outDir         string
	svgPath        string
	cpuRate        float64
	deadline       time.Duration
}

// Bounds: one client process holds at most 20,000 open files (each stream is one), the room at most the send
// route's 1,000 recipients.
const (
	maxStreams      = 15000 // per generator process
	maxTotalStreams = 60000 // distinct loopback source addresses of srcIP
	maxMembers      = 1000
	maxRate         = 500.0
	maxStep         = 2 * time.Minute
	maxRuns         = 10
	maxDeadline     = 2 * time.Hour
)

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 || v > maxRate {
			return nil, fmt.Errorf("-rates: %q is not a rate in (0, %g]", f, maxRate)
		}
		out = append(out, v)
	}
	if len(out) == 0 || len(out) >= maxStepSlots {
		return nil, fmt.Errorf("-rates: 1 to %d rates", maxStepSlots-1)
	}
	return out, nil
}

func main() {
	var o options
	root, err := repoRoot()
	if err != nil {
		fatal(err)
	}
	rates := flag.String("rates", "5,10,20", "offered sends/s, one step each")
	servers := flag.String("servers", "original,suparelay", "servers to run, in this order within each run")
	flag.StringVar(&o.stackDir, "stack", filepath.Join(root, ".stack", "orig"), "the orig stack's state folder (its env and pids)")
	flag.IntVar(&o.members, "members", 41, "room size (members, each a real signed-in user)")
	flag.IntVar(&o.streamUsers, "stream-users", 0, "members that open streams and send (default: members-1)")
	flag.IntVar(&o.streamsPerUser, "streams-per-user", 5, "SSE streams per streaming member")
	flag.DurationVar(&o.stepDuration, "step", 20*time.Second, "length of each rate step")
	flag.IntVar(&o.runs, "runs", 2, "runs; each runs every server once, interleaved")
	flag.IntVar(&o.copyBytes, "copy-bytes", 2400, "bytes of each member's ciphertext copy in a send")
	flag.IntVar(&o.dialConc, "dial-concurrency", 50, "streams being opened at once")
	flag.IntVar(&o.maxInflight, "max-inflight", 200, "sends in flight at most (beyond: counted as not sent)")
	flag.BoolVar(&o.originalStack, "original-stack", false, "measure the stack's own long-running original server instead of a fresh instance per run")
	flag.IntVar(&o.streamsPerProc, "streams-per-process", 10000, "streams one generator process holds; more are spread over worker processes")
	worker := flag.Bool("worker", false, "internal: a stream worker (reads its job on stdin)")
	flag.BoolVar(&o.redis, "redis", true, "suparelay uses the stack's Redis (its production configuration)")
	flag.StringVar(&o.outDir, "out", filepath.Join(root, "bench", "compare", "results"), "folder for results.json and table.md")
	flag.StringVar(&o.svgPath, "svg", filepath.Join(root, "bench", "compare", "latency.svg"), "the chart")
	flag.Float64Var(&o.cpuRate, "cpu-rate", 0, "the rate whose CPU per send the table shows (default: the middle rate)")
	flag.DurationVar(&o.deadline, "deadline", 30*time.Minute, "the whole invocation ends by then")
	flag.Parse()
	if *worker {
		if err := runWorker(); err != nil {
			fatal(err)
		}
		return
	}
	if o.rates, err = parseRates(*rates); err != nil {
		fatal(err)
	}
	o.servers = strings.Split(*servers, ",")
	for _, s := range o.servers {
		if s != origName && s != relayName {
			fatal(fmt.Errorf("-servers: %q is neither %s nor %s", s, origName, relayName))
		}
	}
	if o.streamUsers == 0 {
		o.streamUsers = o.members - 1
	}
	if o.cpuRate == 0 {
		o.cpuRate = o.rates[len(o.rates)/2]
	}
	switch {
	case o.members < 2 || o.members > maxMembers:
		fatal(fmt.Errorf("-members: 2 to %d", maxMembers))
	case o.streamUsers < 1 || o.streamUsers > o.members:
		fatal(errors.New("-stream-users: 1 to -members"))
	case o.streamsPerUser < 1 || o.streamsPerUser > 50:
		fatal(errors.New("-streams-per-user: 1 to 50 (suparelay runs with SSE_MAX_STREAMS_PER_USER raised to it)"))
	case o.streamsPerProc < 1 || o.streamsPerProc > maxStreams:
		fatal(fmt.Errorf("-streams-per-process: 1 to %d (20,000 open files per process)", maxStreams))
	case o.streamUsers*o.streamsPerUser > maxTotalStreams:
		fatal(fmt.Errorf("at most %d streams", maxTotalStreams))
	case o.stepDuration < time.Second || o.stepDuration > maxStep:
		fatal(fmt.Errorf("-step: 1s to %v", maxStep))
	case o.runs < 1 || o.runs > maxRuns:
		fatal(fmt.Errorf("-runs: 1 to %d", maxRuns))
	case o.copyBytes < 16 || o.copyBytes > 60000:
		fatal(errors.New("-copy-bytes: 16 to 60000 (the route's per-copy limit is 64 KiB)"))
	case o.maxInflight < 1 || o.maxInflight > 2000 || o.dialConc < 1 || o.dialConc > 1000:
		fatal(errors.New("-max-inflight 1..2000, -dial-concurrency 1..1000"))
	case o.deadline <= 0 || o.deadline > maxDeadline:
		fatal(fmt.Errorf("-deadline: up to %v", maxDeadline))
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.deadline)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, root, o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}

func selfPID() int { return os.Getpid() }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, root string, o options) error {
	st, err := loadStack(o.stackDir)
	if err != nil {
		return err
	}
	shared, err := st.sharedGroups()
	if err != nil {
		return err
	}
	fpid, err := st.pid("frontend")
	if err != nil {
		return fmt.Errorf("the original server's pid: %w", err)
	}
	keys := devKeys()
	res := &results{Command: "go run ./bench/compare " + strings.Join(os.Args[1:], " "),
		Started: time.Now().UTC().Format(time.RFC3339), Cores: runtime.NumCPU(), LoadStart: loadAvg(),
		Members: o.members, StreamUsers: o.streamUsers, Streams: o.streamUsers * o.streamsPerUser, CopyBytes: o.copyBytes, Rates: o.rates,
		StepSecs: o.stepDuration.Seconds()}

	db, err := pgx.Connect(ctx, st.databaseURL)
	if err != nil {
		return fmt.Errorf("the orig stack's database: %w", err)
	}
	defer db.Close(context.Background())
	tag := strconv.FormatInt(time.Now().Unix(), 36)
	logf("signing in %d members through Supabase Auth (%s)", o.members, st.supabaseURL)
	members, err := createMembers(ctx, db, st.supabaseURL, keys, o.members, tag)
	if err != nil {
		return err
	}
	room, err := createRoom(ctx, db, members, tag)
	if err != nil {
		return fmt.Errorf("room: %w", err)
	}
	r := &runner{o: o, room: room, members: members, cookieName: cookieName(st.supabaseURL), shared: shared, hz: clockTicks()}
	r.bodyHead = buildBodyHead(room, ciphertexts(members, o.copyBytes))
	res.BodyBytes = len(r.bodyHead) + 30
	logf("room %s: %d members, %d streaming × %d streams; send body %d KB", room, o.members, o.streamUsers,
		o.streamsPerUser, res.BodyBytes/1000)

	tmp, err := os.MkdirTemp("", "bench-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(o.outDir, "suparelay.log")) // the nodes of this invocation append to a fresh one
	var bin string
	if slices.Contains(o.servers, relayName) {
		if bin, err = buildSuparelay(ctx, root, tmp); err != nil {
			return err
		}
	}
	_ = os.Remove(filepath.Join(o.outDir, "original.log"))
	for runN := 1; runN <= o.runs && ctx.Err() == nil; runN++ {
		for _, s := range o.servers {
			// A fresh process of each server for each run, as an operator's new node: its RSS before the streams
			// is then not the previous run's heap, grown by 500 KB send bodies and reused by the new streams.
			// -original-stack uses the stack's own long-running original server instead.
			var proc *serverProc
			var t target
			switch {
			case s == relayName:
				if proc, err = startSuparelay(ctx, bin, o.outDir, st, keys, o.redis, o.streamsPerUser); err != nil {
					return err
				}
				t = target{name: relayName, base: proc.base, server: procGroup{Name: relayName, PID: proc.cmd.Process.Pid}}
			case o.originalStack:
				t = target{name: origName, base: st.appURL, server: procGroup{Name: "node", PID: fpid, Tree: true}}
			default:
				if proc, err = startOriginal(ctx, st, o.outDir); err != nil {
					return err
				}
				t = target{name: origName, base: proc.base, server: procGroup{Name: "node", PID: proc.cmd.Process.Pid, Tree: true}}
			}
			sr, err := r.runServer(ctx, t, runN, logf)
			if proc != nil {
				proc.stop()
			}
			res.Runs = append(res.Runs, sr)
			if err != nil {
				logf("%s run %d: %v", s, runN, err)
			}
			time.Sleep(3 * time.Second) // closed streams settle before the other server's run
		}
	}
	res.Finished, res.LoadEnd = time.Now().UTC().Format(time.RFC3339), loadAvg()
	return res.write(o)
}

// cookieName is @supabase/ssr's: sb-<first label of the Supabase URL's host>-auth-token.
func cookieName(supabaseURL string) string {
	host := strings.TrimPrefix(strings.TrimPrefix(supabaseURL, "http://"), "https://")
	host, _, _ = strings.Cut(host, ":")
	label, _, _ := strings.Cut(host, ".")
	return "sb-" + label + "-auth-token"
}

// write saves results.json, table.md and the chart, and prints the tables.
func (r *results) write(o options) error {
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(o.outDir, "results.json"), b, 0o644); err != nil {
		return err
	}
	md := r.markdown(o.cpuRate)
	if err := os.WriteFile(filepath.Join(o.outDir, "table.md"), []byte(md), 0o644); err != nil {
		return err
	}
	title := fmt.Sprintf("send→receipt, %d streams in a %d-member room (median of %d runs)", r.Streams, r.Members, o.runs)
	if err := os.WriteFile(o.svgPath, []byte(svgChart(title, r.chartSeries())), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}

// markdown is the report: the main table, the CPU breakdown and the load record.
func (r *results) markdown(cpuRate float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `%s`  \n", r.Command)
	fmt.Fprintf(&b, "Started %s, finished %s; %d cores; load average %s at the start, %s at the end.  \n", r.Started,
		r.Finished, r.Cores, r.LoadStart, r.LoadEnd)
	fmt.Fprintf(&b, "%d streams of %d members in a %d-member room; each send carries %d ciphertext copies of %d bytes (%d KB); %g s per step.\n\n",
		r.Streams, r.StreamUsers, r.Members, r.Members, r.CopyBytes, r.BodyBytes/1000, r.StepSecs)
	b.WriteString(r.table(cpuRate))
	b.WriteString("\nCPU per 2xx send by process, ms (median of runs; `client` is this load generator, not counted in the total):\n\n")
	b.WriteString(r.cpuTable())
	b.WriteString("\nMachine load, step by step:\n\n")
	b.WriteString(r.loadTable())
	return b.String()
}
