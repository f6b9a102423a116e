package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// buildSuparelay builds cmd/suparelay into dir and returns the binary's path (the build cache makes a second build
// in one run cheap).
func buildSuparelay(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "suparelay")
	build := exec.Command(goBin, "build", "-o", bin, "github.com/qryptchat/suparelay/cmd/suparelay")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// relayNode is one running suparelay process.
type relayNode struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startNode runs bin in dir (no .env file there) with env over the test's own environment, logging to logPath.
func startNode(t *testing.T, bin, dir, logPath string, env map[string]string) *relayNode {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	n := &relayNode{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(n.done)
	}()
	return n
}

// stop ends the process gracefully (SIGTERM), then with SIGKILL after grace; it returns at once when the process
// has already exited.
func (n *relayNode) stop(grace time.Duration) {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(grace):
		n.kill()
	}
}

// kill ends the process at once (SIGKILL: no drain, no goodbye to its streams) and waits for it.
func (n *relayNode) kill() {
	_ = n.cmd.Process.Kill()
	<-n.done
}

// freePort is a loopback port free at the time of the call.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
