// Package chromium runs a headless Debian Chromium for browser tests and drives it over the Chrome DevTools
// Protocol, spoken on a pipe (--remote-debugging-pipe): no DevTools port, nothing to find or race for.
//
// Chromium is kept on loopback. Its launch flags switch off background networking, component updates, sync,
// first-run work, safe browsing and the other services that phone home; the Google service URLs that remain are
// pointed at a closed loopback port; a host-resolver rule resolves every name but loopback to nothing; and the browser's NetLog is read when it closes: CheckLoopback reports any request,
// lookup or connection that aimed anywhere but loopback, so a test fails if Chromium even tried.
package chromium

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure Launch.
type Options struct {
	// Dir receives the profile, the NetLog and Chromium's own log. Required; a test passes t.TempDir().
	Dir string
	// WindowSize is "width,height" (default 1280,900: wide enough for desktop layouts).
	WindowSize string
	// Stderr, when set, receives Chromium's stderr (its log) as well as the log file.
	Stderr io.Writer
}

// Browser is one running Chromium.
type Browser struct {
	cmd     *exec.Cmd
	netLog  string
	logPath string
	conn    *conn
	done    chan struct{}
	waitErr error
	closed  sync.Once
}

// Path returns the Chromium binary to use, or "" when none is installed.
func Path() string {
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

// deadEnd is a loopback address where nothing listens.
const deadEnd = "http://127.0.0.1:9"

// loopbackFlags keep Chromium from talking to anything but the test's servers.
var loopbackFlags = []string{
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--no-first-run",
	"--no-default-browser-check",
	"--disable-default-apps",
	"--disable-extensions",
	"--disable-domain-reliability",
	"--disable-client-side-phishing-detection",
	"--disable-breakpad",
	"--disable-crash-reporter",
	"--no-pings",
	"--metrics-recording-only",
	"--safebrowsing-disable-auto-update",
	"--disable-quic",
	"--disable-features=SafeBrowsing,Translate,OptimizationHints,MediaRouter,AutofillServerCommunication," +
		"CertificateTransparencyComponentUpdater,DialMediaRouteProvider,InterestFeedContentSuggestions,NetworkTimeServiceQuerying",
	// What the flags above do not stop — Google account listing at start-up (IdentityManager), the component
	// updater, extension updates — is pointed at a closed loopback port (9, discard): refused at once, nowhere else.
	"--gaia-url=" + deadEnd, "--google-apis-url=" + deadEnd, "--lso-url=" + deadEnd,
	"--component-updater=url-source=" + deadEnd, "--apps-gallery-update-url=" + deadEnd,
	// Every name but localhost and the loopback addresses resolves to nothing (the rules apply to IP literals too).
	"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
}

// Launch starts Chromium headless with a fresh profile in opts.Dir. The process and its helpers end with ctx or
// Close.
func Launch(ctx context.Context, opts Options) (*Browser, error) {
	bin := Path()
	if bin == "" {
		return nil, errors.New("chromium is not installed")
	}
	if opts.Dir == "" {
		return nil, errors.New("chromium: Options.Dir is required")
	}
	if opts.WindowSize == "" {
		opts.WindowSize = "1280,900"
	}
	profile := filepath.Join(opts.Dir, "profile")
	if err := os.MkdirAll(profile, 0o700); err != nil {
		return nil, err
	}
	b := &Browser{netLog: filepath.Join(opts.Dir, "netlog.json"), logPath: filepath.Join(opts.Dir, "chromium.log"),
		done: make(chan struct{})}
	args := append([]string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir=" + profile, "--window-size=" + opts.WindowSize, "--lang=en-US",
		"--remote-debugging-pipe", "--log-net-log=" + b.netLog, "--net-log-capture-mode=Default",
		"--enable-logging=stderr", "--v=0",
	}, loopbackFlags...)
	args = append(args, "about:blank")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Close ends the helper processes too
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	logFile, err := os.Create(b.logPath)
	if err != nil {
		return nil, err
	}
	if opts.Stderr != nil {
		cmd.Stderr = io.MultiWriter(logFile, opts.Stderr)
	} else {
		cmd.Stderr = logFile
	}
	// Chromium reads commands from fd 3 and writes replies and events to fd 4.
	toBrowser, ourWrite, err := os.Pipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	ourRead, fromBrowser, err := os.Pipe()
	if err != nil {
		logFile.Close()
		toBrowser.Close()
		ourWrite.Close()
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{toBrowser, fromBrowser}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		for _, f := range []*os.File{toBrowser, ourWrite, ourRead, fromBrowser} {
			f.Close()
		}
		return nil, err
	}
	toBrowser.Close()
	fromBrowser.Close()
	b.cmd = cmd
	b.conn = newConn(ourWrite, bufio.NewReaderSize(ourRead, 1<<20))
	go func() {
		b.waitErr = cmd.Wait()
		logFile.Close()
		ourWrite.Close()
		close(b.done)
	}()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := b.conn.call(cctx, "", "Browser.getVersion", nil); err != nil {
		b.Close()
		return nil, fmt.Errorf("chromium did not answer on its DevTools pipe: %w (log: %s)", err, b.logPath)
	}
	return b, nil
}

// LogPath is Chromium's own log file.
func (b *Browser) LogPath() string { return b.logPath }

// Close ends the browser: politely (so that the NetLog is complete), then by force.
func (b *Browser) Close() {
	b.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = b.conn.call(ctx, "", "Browser.close", nil)
		cancel()
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.done
		}
		b.conn.close()
	})
}

// NewContext opens an isolated browser context (its own cookies, storage and IndexedDB, like an incognito
// window) with one blank page, attached for commands.
func (b *Browser) NewContext(ctx context.Context) (*Page, error) {
	var bc struct {
		ID string `json:"browserContextId"`
	}
	if err := b.callInto(ctx, "", "Target.createBrowserContext", map[string]any{"disposeOnDetach": true}, &bc); err != nil {
		return nil, err
	}
	var tgt struct {
		ID string `json:"targetId"`
	}
	if err := b.callInto(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank", "browserContextId": bc.ID}, &tgt); err != nil {
		return nil, err
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.callInto(ctx, "", "Target.attachToTarget", map[string]any{"targetId": tgt.ID, "flatten": true}, &att); err != nil {
		return nil, err
	}
	p := &Page{b: b, session: att.SessionID, target: tgt.ID}
	b.conn.onEvent(att.SessionID, p.event)
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable", "Network.enable"} {
		if _, err := p.Call(ctx, m, nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (b *Browser) callInto(ctx context.Context, session, method string, params any, out any) error {
	raw, err := b.conn.call(ctx, session, method, params)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// CheckLoopback closes the browser if it is still running, reads its NetLog and returns every destination that
// was not loopback (a URL's host, a name looked up, an address connected to), or nil.
func (b *Browser) CheckLoopback() ([]string, error) {
	b.Close()
	f, err := os.Open(b.netLog)
	if err != nil {
		return nil, fmt.Errorf("netlog: %w", err)
	}
	defer f.Close()
	return nonLoopback(f)
}

// callTimeout bounds every command: a page that hangs must fail the test, not wedge it.
const callTimeout = 30 * time.Second

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, callTimeout)
}

// isLoopbackHost reports whether h (a host name or address, perhaps bracketed, perhaps with a port) is loopback.
func isLoopbackHost(h string) bool {
	h = strings.TrimSpace(h)
	if host, _, ok := strings.Cut(strings.TrimPrefix(h, "["), "]"); ok && strings.HasPrefix(h, "[") {
		h = host
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.Count(h, ":") == 1 {
		h = h[:i]
	}
	h = strings.ToLower(h)
	return h == "" || h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasPrefix(h, "127.") ||
		h == "::1" || h == "0:0:0:0:0:0:0:1"
}
