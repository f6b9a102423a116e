package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// serverProc is a server process this benchmark started: suparelay, or a fresh instance of the original.
type serverProc struct {
	cmd  *exec.Cmd
	base string
	done chan struct{}
}

// originalCommand is the command line, environment and folder of the orig stack's running original server (the
// Node process under runuser), read from /proc: the same build, started the same way.
func (s *stack) originalCommand() (argv, env []string, dir string, err error) {
	root, err := s.pid("frontend")
	if err != nil {
		return nil, nil, "", err
	}
	snap := allStats()
	for _, p := range append([]int{root}, descendants(snap, root)...) {
		cl, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
		if len(args) < 2 || filepath.Base(args[0]) != "node" || !strings.HasSuffix(args[1], "index.js") {
			continue
		}
		envb, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "environ"))
		if err != nil {
			return nil, nil, "", fmt.Errorf("the original server's environment: %w", err)
		}
		dir, _ = os.Readlink(filepath.Join("/proc", strconv.Itoa(p), "cwd"))
		for _, kv := range bytes.Split(envb, []byte{0}) {
			if len(kv) > 0 {
				env = append(env, string(kv))
			}
		}
		return args, env, dir, nil
	}
	return nil, nil, "", fmt.Errorf("no node …/index.js process under the orig stack's frontend (pid %d)", root)
}

// startOriginal runs a fresh instance of the original server (the stack's build and environment, its own free
// loopback port and ORIGIN), logging to dir/original.log. A fresh process per run is what makes its RSS delta per
// stream comparable with suparelay's: the stack's long-running instance reuses heap that earlier load grew.
func startOriginal(ctx context.Context, s *stack, dir string) (*serverProc, error) {
	argv, env, wd, err := s.originalCommand()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	base := "http://" + addr
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k != "PORT" && k != "HOST" && k != "ORIGIN" {
			out = append(out, kv)
		}
	}
	out = append(out, "PORT="+port, "HOST=127.0.0.1", "ORIGIN="+base)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = wd, out
	return startProc(ctx, cmd, base, filepath.Join(dir, "original.log"), "/")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startProc starts cmd logging to logPath and waits (30 s at most) until base+probe answers below 500.
func startProc(ctx context.Context, cmd *exec.Cmd, base, logPath, probe string) (*serverProc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &serverProc{cmd: cmd, base: base, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+probe, nil)
		if res, err := hc.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode < 500 && (probe != "/readyz" || res.StatusCode == http.StatusOK) {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited (log: %s)", filepath.Base(cmd.Path), logPath)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("%s not ready at %s within 30 s (log: %s)", filepath.Base(cmd.Path), base, logPath)
		}
	}
}
