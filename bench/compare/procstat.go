package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// procGroup is one named part of the stack whose CPU a send is charged with: a root process and, with tree set,
// every descendant (PostgreSQL's backends, the Node server under runuser). CPU of descendants that exited during a
// step is still counted, through the root's cutime/cstime once it reaped them.
type procGroup struct {
	Name string
	PID  int
	Tree bool
	Also []int // more processes of the group, each alone (the generator's workers)
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || n <= 0 {
		return 100
	}
	return float64(n)
}

// procStat is what one /proc/<pid>/stat line says about CPU and parentage.
type procStat struct {
	pid, ppid                    int
	utime, stime, cutime, cstime uint64
	comm                         string
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat parses a stat line; comm (field 2) may contain spaces and parentheses, so fields are counted from the
// last ')'.
func parseStat(b []byte) (procStat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("malformed stat")
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("short stat")
	}
	num := func(i int) uint64 { n, _ := strconv.ParseUint(f[i-3], 10, 64); return n }
	ppid, _ := strconv.Atoi(f[1])
	return procStat{pid: pid, ppid: ppid, utime: num(14), stime: num(15), cutime: num(16), cstime: num(17),
		comm: string(b[open+1 : end])}, nil
}

// allStats reads every process's stat once (a snapshot for descendant walks).
func allStats() map[int]procStat {
	out := map[int]procStat{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(pid); err == nil {
			out[pid] = s
		}
	}
	return out
}

// descendants are the pids below root in snap.
func descendants(snap map[int]procStat, root int) []int {
	kids := map[int][]int{}
	for pid, s := range snap {
		kids[s.ppid] = append(kids[s.ppid], pid)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, k := range kids[p] {
			out = append(out, k)
			queue = append(queue, k)
		}
	}
	return out
}

// cpuTicks is the CPU a group has used so far, in clock ticks.
func cpuTicks(snap map[int]procStat, g procGroup) uint64 {
	var total uint64
	for _, p := range g.Also {
		if s, ok := snap[p]; ok {
			total += s.utime + s.stime
		}
	}
	root, ok := snap[g.PID]
	if !ok {
		return total
	}
	total += root.utime + root.stime
	if g.Tree {
		total += root.cutime + root.cstime
		for _, d := range descendants(snap, g.PID) {
			s := snap[d]
			total += s.utime + s.stime
		}
	}
	return total
}

// cpuSample is the CPU seconds of each group at one moment.
type cpuSample map[string]float64

func sampleCPU(groups []procGroup, hz float64) cpuSample {
	snap := allStats()
	out := cpuSample{}
	for _, g := range groups {
		out[g.Name] += float64(cpuTicks(snap, g)) / hz
	}
	return out
}

// rssKiB is the resident set of pid, or of the largest process in its tree when tree is set (the Node server runs
// under runuser, which holds next to nothing).
func rssKiB(pid int, tree bool) int64 {
	best := statusRSS(pid)
	if tree {
		for _, d := range descendants(allStats(), pid) {
			best = max(best, statusRSS(d))
		}
	}
	return best
}

func statusRSS(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
