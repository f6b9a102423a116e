package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A generator process holds at most 20,000 open files, one per stream; beyond -streams-per-process the streams are
// spread over child processes of this binary (-worker), each reporting its receipts on request over a pipe.

// poolReport is what a set of streams saw of one step: its receipts and their latency buckets.
type poolReport struct {
	Delivered uint64      `json:"delivered"`
	Last      int64       `json:"last"` // unix ns of the latest delivery of any step
	Dropped   int64       `json:"dropped"`
	Retries   int64       `json:"retries"`
	Buckets   [][2]uint64 `json:"buckets,omitempty"` // (bucket, count), non-zero ones only
}

func (rc *receipts) report(slot int) poolReport {
	p := poolReport{Delivered: rc.delivered[slot].Load(), Last: rc.lastArrive.Load(), Dropped: rc.dropped.Load(),
		Retries: rc.retries.Load()}
	for i := range rc.lat[slot].b {
		if n := rc.lat[slot].b[i].Load(); n > 0 {
			p.Buckets = append(p.Buckets, [2]uint64{uint64(i), n})
		}
	}
	return p
}

// merge adds o into p (the latest arrival is the later one).
func (p *poolReport) merge(o poolReport) {
	p.Delivered += o.Delivered
	p.Last = max(p.Last, o.Last)
	p.Dropped += o.Dropped
	p.Retries += o.Retries
	p.Buckets = append(p.Buckets, o.Buckets...)
}

func (p poolReport) latency() quantiles {
	var h hist
	for _, b := range p.Buckets {
		if b[0] <= histBuckets {
			h.b[b[0]].Add(b[1])
		}
	}
	return h.summary()
}

// streamPool is the open streams of one server run, in this process or spread over workers.
type streamPool interface {
	report(slot int) poolReport
	pids() []int
	close()
}

func (ss *streamSet) report(slot int) poolReport { return ss.rc.report(slot) }
func (ss *streamSet) pids() []int                { return nil }

// wireSpec is a streamSpec as a worker receives it.
type wireSpec struct {
	Base, CookieName, Cookie, Src, XFF string
}

type workerJob struct {
	Specs []wireSpec
	Conc  int
}

type workerHello struct {
	OK     int
	TookNS int64
	Errs   []string
}

// runWorker is -worker: read a job from stdin, open its streams, say how that went, then answer "r <slot>" lines
// with reports until stdin closes.
func runWorker() error {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return err
	}
	var job workerJob
	if err := json.Unmarshal(line, &job); err != nil {
		return err
	}
	if len(job.Specs) > maxStreams {
		return fmt.Errorf("worker: %d streams, at most %d", len(job.Specs), maxStreams)
	}
	specs := make([]streamSpec, len(job.Specs))
	for i, w := range job.Specs {
		specs[i] = streamSpec{base: w.Base, cookieName: w.CookieName, cookie: w.Cookie, src: net.ParseIP(w.Src), xff: w.XFF}
	}
	ss, ok, took, errs := connectAll(context.Background(), specs, job.Conc)
	defer ss.close()
	hello := workerHello{OK: ok, TookNS: int64(took)}
	for _, e := range errs {
		hello.Errs = append(hello.Errs, e.Error())
	}
	out := json.NewEncoder(os.Stdout)
	if err := out.Encode(hello); err != nil {
		return err
	}
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		slot, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "r ")))
		if err != nil || slot < 0 || slot >= maxStepSlots {
			return fmt.Errorf("worker: bad request %q", line)
		}
		if err := out.Encode(ss.report(slot)); err != nil {
			return err
		}
	}
}

type worker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// workerPool is streams spread over worker processes.
type workerPool struct {
	mu      sync.Mutex
	workers []*worker
}

// connectWorkers starts ceil(len(specs)/per) workers, gives each its share of the streams, and waits for all of
// them to connect (each opens conc at once).
func connectWorkers(specs []streamSpec, per, conc int) (*workerPool, int, time.Duration, []error) {
	exe, err := os.Executable()
	if err != nil {
		return &workerPool{}, 0, 0, []error{err}
	}
	wp := &workerPool{}
	start := time.Now()
	var errs []error
	for from := 0; from < len(specs); from += per {
		part := specs[from:min(from+per, len(specs))]
		job := workerJob{Conc: conc}
		for _, s := range part {
			job.Specs = append(job.Specs, wireSpec{Base: s.base, CookieName: s.cookieName, Cookie: s.cookie, Src: s.src.String(), XFF: s.xff})
		}
		cmd := exec.Command(exe, "-worker")
		cmd.Stderr = os.Stderr
		in, err1 := cmd.StdinPipe()
		out, err2 := cmd.StdoutPipe()
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, err)
			break
		}
		if err := cmd.Start(); err != nil {
			errs = append(errs, err)
			break
		}
		w := &worker{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 64<<10)}
		wp.workers = append(wp.workers, w)
		b, _ := json.Marshal(job)
		if _, err := in.Write(append(b, '\n')); err != nil {
			errs = append(errs, err)
		}
	}
	ok := 0
	for _, w := range wp.workers {
		var h workerHello
		line, err := w.out.ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(line, &h)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", w.cmd.Process.Pid, err))
			continue
		}
		ok += h.OK
		for _, e := range h.Errs {
			if len(errs) < 4 {
				errs = append(errs, errors.New(e))
			}
		}
	}
	return wp, ok, time.Since(start), errs
}

func (wp *workerPool) report(slot int) poolReport {
	wp.mu.Lock()
	defer wp.mu.Unlock()
	var all poolReport
	for _, w := range wp.workers {
		if _, err := fmt.Fprintf(w.in, "r %d\n", slot); err != nil {
			continue
		}
		line, err := w.out.ReadBytes('\n')
		var p poolReport
		if err == nil && json.Unmarshal(line, &p) == nil {
			all.merge(p)
		}
	}
	return all
}

func (wp *workerPool) pids() []int {
	var out []int
	for _, w := range wp.workers {
		out = append(out, w.cmd.Process.Pid)
	}
	return out
}

// close ends the workers (closing stdin ends them; a stuck one is killed after 10 s).
func (wp *workerPool) close() {
	for _, w := range wp.workers {
		w.in.Close()
	}
	for _, w := range wp.workers {
		done := make(chan struct{})
		go func() { _ = w.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = w.cmd.Process.Kill()
			<-done
		}
	}
}

// connectStreams opens specs in this process, or over workers when they are more than per.
func connectStreams(ctx context.Context, specs []streamSpec, conc, per int) (streamPool, int, time.Duration, []error) {
	if len(specs) <= per {
		return connectAll(ctx, specs, conc)
	}
	return connectWorkers(specs, per, conc)
}
