package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stack is the original-server stack of scripts/stack.sh (STACK_NAME=orig): an upgraded production database with
// the ORIGINAL Node server at its app port. Both servers under test use its PostgreSQL, PostgREST, Auth and gateway,
// so the only thing that differs between the two halves of a run is the server.
type stack struct {
	dir         string // .stack/orig
	appURL      string // the original server
	supabaseURL string // the gateway (/auth/v1, /rest/v1)
	databaseURL string
	redisURL    string
}

// loadStack reads <dir>/env (the shell file stack.sh writes: export NAME='value').
func loadStack(dir string) (*stack, error) {
	f, err := os.Open(filepath.Join(dir, "env"))
	if err != nil {
		return nil, fmt.Errorf("the orig stack is not up (%w): start it as scripts/test.sh does, or run `make compare`", err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			vars[k] = strings.Trim(v, "'")
		}
	}
	s := &stack{dir: dir, appURL: vars["SUPARELAY_ORIG_APP_URL"], supabaseURL: vars["SUPARELAY_ORIG_SUPABASE_URL"],
		databaseURL: vars["SUPARELAY_ORIG_DATABASE_URL"], redisURL: vars["SUPARELAY_ORIG_REDIS_URL"]}
	if s.appURL == "" || s.supabaseURL == "" || s.databaseURL == "" {
		return nil, fmt.Errorf("%s/env lacks SUPARELAY_ORIG_* addresses: is it the orig stack's (STACK_ENV_PREFIX=SUPARELAY_ORIG)?", dir)
	}
	for _, u := range []string{s.appURL, s.supabaseURL} {
		if !loopbackURL(u) {
			return nil, fmt.Errorf("only loopback servers are benchmarked: %s", u)
		}
	}
	return s, nil
}

func loopbackURL(u string) bool {
	rest, ok := strings.CutPrefix(u, "http://")
	if !ok {
		return false
	}
	host, _, err := net.SplitHostPort(strings.TrimRight(rest, "/"))
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// pid reads .stack/orig/pids/<name>.pid.
func (s *stack) pid(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "pids", name+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// postmasterPID is the first line of the cluster's postmaster.pid.
func (s *stack) postmasterPID() (int, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, "pg.data"))
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(data)), "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

// sharedGroups are the stack's processes both servers load: the database, PostgREST, Auth, the gateway, Redis.
func (s *stack) sharedGroups() ([]procGroup, error) {
	pg, err := s.postmasterPID()
	if err != nil {
		return nil, fmt.Errorf("postgres pid: %w", err)
	}
	out := []procGroup{{Name: "postgres", PID: pg, Tree: true}}
	for _, n := range []string{"postgrest", "auth", "gateway", "redis"} {
		p, err := s.pid(n)
		if err != nil {
			return nil, fmt.Errorf("%s pid: %w", n, err)
		}
		out = append(out, procGroup{Name: n, PID: p, Tree: true})
	}
	return out, nil
}

// buildSuparelay builds cmd/suparelay of the module at root into dir; COMPARE_SUPARELAY_BIN names a binary built
// elsewhere instead (another commit's, for a before/after of suparelay alone).
func buildSuparelay(ctx context.Context, root, dir string) (string, error) {
	if b := os.Getenv("COMPARE_SUPARELAY_BIN"); b != "" {
		return b, nil
	}
	bin := filepath.Join(dir, "suparelay")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/suparelay")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/suparelay: %v\n%s", err, out)
	}
	return bin, nil
}

// startSuparelay runs bin (in dir, where it logs to suparelay.log) on a free loopback port against the orig stack, in the production configuration except
// for what a load test must change: no rate limits (the load comes from a few addresses), no expiry job, no front
// door (the original serves its own pages; only /api is compared), and a per-user stream cap of at least
// streamsPerUser (the original has none; production's default is 10).
func startSuparelay(ctx context.Context, bin, dir string, s *stack, keys apiKeys, useRedis bool, streamsPerUser int) (*serverProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env := map[string]string{
		"LISTEN_ADDR": addr, "SUPABASE_URL": s.supabaseURL, "SUPABASE_PUBLIC_URL": s.supabaseURL,
		"SUPABASE_ANON_KEY": keys.anon, "SUPABASE_SERVICE_ROLE_KEY": keys.service, "SUPABASE_JWT_SECRET": keys.jwtSecret,
		"EXPIRY_JOB_INTERVAL": "0", "RATE_LIMITS": "false", "FRONTEND_URL": "", "PROXY_SUPABASE": "false",
		"LOG_LEVEL": "warn", "LOG_FORMAT": "text", "REDIS_URL": "",
		"SSE_MAX_STREAMS_PER_USER": strconv.Itoa(max(10, streamsPerUser)),
	}
	if a := os.Getenv("COMPARE_PPROF_ADDR"); a != "" { // to profile suparelay during a run (loopback only)
		env["DEBUG_PPROF_ADDR"] = a
	}
	if useRedis && s.redisURL != "" {
		env["REDIS_URL"] = s.redisURL
		env["REDIS_PREFIX"] = fmt.Sprintf("benchcompare%d:", os.Getpid())
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return startProc(ctx, cmd, "http://"+addr, filepath.Join(dir, "suparelay.log"), "/readyz")
}

// stop ends the process gracefully, then for good after 15 s.
func (p *serverProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// repoRoot is the folder with go.mod at or above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}
