package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// serverState is what an operator reads off the server process: RSS from /proc/<pid>/status (what ps and top
// show), and, with the opt-in pprof listener (DEBUG_PPROF_ADDR), the Go runtime's heap, stacks and goroutines.
type serverState struct {
	RSS, HeapInuse, StackInuse, Sys uint64
	Goroutines                      int
	FDs                             int
}

func readState(ctx context.Context, pid int, pprofURL string, gc bool) (serverState, error) {
	var s serverState
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			s.RSS = kb << 10
		}
	}
	f.Close()
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(ents)
	}
	if pprofURL == "" {
		return s, nil
	}
	// debug=1 ends with the runtime.MemStats of the moment ("# Stack = inuse / sys"); gc=1 collects first.
	q := "?debug=1"
	if gc {
		q += "&gc=1"
	}
	body, err := get(ctx, pprofURL+"/debug/pprof/heap"+q)
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(body, "\n") {
		for name, dst := range map[string]*uint64{"# HeapInuse = ": &s.HeapInuse, "# Stack = ": &s.StackInuse, "# Sys = ": &s.Sys} {
			if v, ok := strings.CutPrefix(line, name); ok {
				*dst, _ = strconv.ParseUint(strings.Fields(v)[0], 10, 64)
			}
		}
	}
	body, err = get(ctx, pprofURL+"/debug/pprof/goroutine?debug=1")
	if err != nil {
		return s, err
	}
	if v, ok := strings.CutPrefix(strings.SplitN(body, "\n", 2)[0], "goroutine profile: total "); ok {
		s.Goroutines, _ = strconv.Atoi(strings.TrimSpace(v))
	}
	return s, nil
}

var plainClient = &http.Client{Timeout: 60 * time.Second}

func get(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return "", err
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(b), err
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func (s serverState) String() string {
	return fmt.Sprintf("rss=%.1f MiB heap_inuse=%.1f MiB stack_inuse=%.1f MiB sys=%.1f MiB goroutines=%d fds=%d",
		mib(s.RSS), mib(s.HeapInuse), mib(s.StackInuse), mib(s.Sys), s.Goroutines, s.FDs)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}
