package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/chromium"
	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// pin is the backup PIN every user sets at sign-up.
const pin = "135790"

// blockedURLs are the third-party scripts the frontend's app.html references (analytics). Chromium is told never
// to start these requests, so that they are not even attempted.
var blockedURLs = []string{"*datafa.st*", "*crawlproof.com*"}

// prelude is prepended to every expression the test evaluates in a page: small DOM helpers. Svelte 5 delegates
// input/change/click to the app root, so events are dispatched bubbling.
const prelude = `
const $ = s => document.querySelector(s), $$ = s => [...document.querySelectorAll(s)];
const el = s => { const e = typeof s === 'string' ? $(s) : s; if (!e) throw new Error('no element ' + s); return e; };
const type = (s, v) => { const e = el(s); e.focus(); e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); return true; };
const click = s => { el(s).click(); return true; };
const button = (label, root = document) => [...root.querySelectorAll('button')].find(b => b.textContent.trim().includes(label));
const text = (s, root = document) => { const e = typeof s === 'string' ? root.querySelector(s) : s; return e ? e.textContent.trim() : null; };
const texts = s => $$(s).map(e => e.textContent.trim());
const b64bytes = b64 => Uint8Array.from(atob(b64), c => c.charCodeAt(0));
const bytesb64 = buf => { let s = ''; for (const c of new Uint8Array(buf)) s += String.fromCharCode(c); return btoa(s); };
const setFile = (s, name, mime, b64) => { const dt = new DataTransfer(); dt.items.add(new File([b64bytes(b64)], name, {type: mime}));
  const e = el(s); e.files = dt.files; e.dispatchEvent(new Event('change', {bubbles: true})); return true; };
const me = () => JSON.parse(localStorage.getItem('qrypt_user') || 'null');
const session = () => JSON.parse(localStorage.getItem('qrypt_session') || 'null');
const conv = id => $$('button.conversation-item').find(b => b.querySelector('.conversation-id')?.title === id);
const convName = id => { const c = conv(id); return c ? text('.conversation-name', c) : null; };
const section = id => { const c = conv(id); return c ? text('.section-header h3', c.closest('.section')) : null; };
const messages = () => $$('.message-list .message-item').map(m => ({own: m.classList.contains('own'),
  text: text('.message-text', m) ?? '', sender: text('.sender-name', m) ?? ''}));
const online = () => text('.chat-sidebar .status-text') === 'Online';
`

// js wraps an expression with the prelude into an async function, so that it may await and its value is returned.
func js(expr string) string { return "(async () => {" + prelude + "\nreturn (" + expr + ");\n})()" }

// q quotes s as a JavaScript string literal.
func q(s string) string { b, _ := json.Marshal(s); return string(b) }

// user is one person in their own browser context.
type user struct {
	label    string // A, B, C
	phone    string
	username string
	display  string
	ip       string // X-Forwarded-For: each user is a client of its own
	p        *chromium.Page
	id       string // internal id (public.users.id), from localStorage qrypt_user
	authID   string // auth uid
	app      string
	dialogs  int       // dialogs seen when the current step began
	authFrom time.Time // just before the user's first /api/auth request (sign-up)
}

// authWindow is the budget of /api/auth/* the contract keeps from the original: 5 requests a minute per client
// address and User-Agent, the window fixed from its first request. Signing up spends all 5 (send-sms, verify-sms
// twice, backup-pin, key-backup), so a user's next /api/auth request (the avatar upload, the settings page) must
// wait for the window to end, as a real user hitting the limit would.
const authWindow = time.Minute

// waitAuthBudget sleeps until u's sign-up window of /api/auth requests is over.
func (u *user) waitAuthBudget(t *testing.T, ctx context.Context) {
	t.Helper()
	d := time.Until(u.authFrom.Add(authWindow + 2*time.Second))
	if d <= 0 {
		return
	}
	t.Logf("%s: waiting %s for the /api/auth budget spent by the sign-up", u.label, d.Round(time.Second))
	select {
	case <-time.After(d):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
}

func (u *user) do(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if err := u.p.Eval(ctx, js(expr), nil); err != nil {
		t.Fatalf("%s: %s: %v", u.label, what, err)
	}
}

func (u *user) get(t *testing.T, ctx context.Context, what, expr string, out any) {
	t.Helper()
	if err := u.p.Eval(ctx, js(expr), out); err != nil {
		t.Fatalf("%s: %s: %v", u.label, what, err)
	}
}

func (u *user) wait(t *testing.T, ctx context.Context, what, cond string, timeout time.Duration) {
	t.Helper()
	t0 := time.Now()
	defer func() {
		if d := time.Since(t0); d > 3*time.Second && !t.Failed() {
			t.Logf("%s: %s took %s", u.label, what, d.Round(100*time.Millisecond))
		}
	}()
	if err := u.p.WaitFor(ctx, js(cond), timeout); err != nil {
		if errors.Is(err, chromium.ErrTimeout) {
			// The condition once more, for its exception if it throws (the timeout error repeats the whole script).
			var v any
			err = fmt.Errorf("not met within %s", timeout)
			if e := u.p.Eval(ctx, js(cond), &v); e != nil {
				err = fmt.Errorf("%w (it throws: %v)", err, e)
			}
		}
		var shown string
		_ = u.p.Eval(ctx, js(`location.pathname + ' | ' + (document.body ? document.body.innerText.replace(/\s+/g, ' ').slice(0, 400) : '')`), &shown)
		t.Fatalf("%s: waiting for %s: %v\npage: %s", u.label, what, err, shown)
	}
}

// press waits until the button found by the expression exists and is enabled (Svelte applies bound input values
// in a microtask, so a button enabled by typing is not enabled synchronously), then clicks it.
func (u *user) press(t *testing.T, ctx context.Context, what, btn string) {
	t.Helper()
	u.wait(t, ctx, what+" enabled", `(() => { const b = `+btn+`; return b && !b.disabled; })()`, 10*time.Second)
	u.do(t, ctx, what, `click(`+btn+`)`)
}

func (u *user) open(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	if err := u.p.Navigate(ctx, u.app+path); err != nil {
		t.Fatalf("%s: open %s: %v", u.label, path, err)
	}
}

// mark sets a marker on the current document; unreloaded reports whether it is still there (the page was not
// reloaded or navigated since), so that "arrived live" is proven, not assumed.
func (u *user) mark(t *testing.T, ctx context.Context) {
	t.Helper()
	u.do(t, ctx, "mark the document", `window.__e2eLive = true`)
}

func (u *user) unreloaded(t *testing.T, ctx context.Context) {
	t.Helper()
	var ok bool
	u.get(t, ctx, "the document marker", `window.__e2eLive === true`, &ok)
	if !ok {
		t.Fatalf("%s: the page was reloaded: what it shows did not arrive live", u.label)
	}
}

// openChat loads /chat in full and waits for the sidebar to be online (the SSE stream open, keys loaded).
func (u *user) openChat(t *testing.T, ctx context.Context) {
	t.Helper()
	u.open(t, ctx, "/chat")
	u.wait(t, ctx, "the chat sidebar Online", `online()`, 30*time.Second)
}

// selectConversation clicks the sidebar item of id and waits for its messages to be loaded.
func (u *user) selectConversation(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	u.wait(t, ctx, "conversation "+id+" in the sidebar", `conv(`+q(id)+`)`, 30*time.Second)
	seen := len(u.p.Console())
	u.do(t, ctx, "select conversation "+id, `click(conv(`+q(id)+`))`)
	u.wait(t, ctx, "conversation "+id+" open", `conv(`+q(id)+`).classList.contains('active') && $('.message-list') &&
		($('.message-list .message-item') || text('.message-list .empty-state h3') === 'No messages yet')`, 20*time.Second)
	// The page shows the conversation (and its empty state) before the chat store makes it the active one, which
	// happens only when its messages/load has been processed; a NEW_MESSAGE arriving in between is taken for another
	// conversation and never shown (a race of the unchanged frontend, with either server). Wait for that load.
	deadline := time.Now().Add(20 * time.Second)
	for !consoleHas(u.p.Console()[seen:], "[LOAD] Processing") {
		if time.Now().After(deadline) {
			t.Fatalf("%s: conversation %s's messages were never loaded", u.label, id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consoleHas reports whether any console line contains s.
func consoleHas(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// send types text into the composer, sends it and waits until the sender's own message shows (it arrives through
// the sender's own SSE stream).
func (u *user) send(t *testing.T, ctx context.Context, msg string) {
	t.Helper()
	u.do(t, ctx, "type a message", `type('textarea[placeholder="Type a message..."]', `+q(msg)+`)`)
	u.press(t, ctx, "send", `$('button.send-button')`)
	u.wait(t, ctx, "own message "+q(msg)+" shown", `messages().some(m => m.own && m.text === `+q(msg)+`)`, 20*time.Second)
	u.wait(t, ctx, "the composer cleared", `$('textarea[placeholder="Type a message..."]').value === ''`, 5*time.Second)
}

// sees waits until a message of from with text msg shows in u's open conversation.
func (u *user) sees(t *testing.T, ctx context.Context, from *user, msg string, timeout time.Duration) {
	t.Helper()
	u.wait(t, ctx, from.label+"'s message "+q(msg), `messages().some(m => !m.own && m.text === `+q(msg)+` && m.sender === `+q(from.display)+`)`, timeout)
}

// messageTexts returns the texts of the open conversation's messages, in order, own ones prefixed with "me:".
func (u *user) messageTexts(t *testing.T, ctx context.Context) []string {
	t.Helper()
	var out []string
	u.get(t, ctx, "messages", `messages().map(m => (m.own ? 'me:' : m.sender + ':') + m.text)`, &out)
	return out
}

// fixture is the whole run: the server, the browser, the users, the artifacts.
type fixture struct {
	app       string
	artifacts string
	relayLog  string
	b         *chromium.Browser
	users     []*user
}

// TestFrontend drives the real QryptChat frontend in headless Chromium against suparelay (run here on the origin the
// frontend was built for, in front of the frontend's page server and the real Supabase stack), with three users in
// isolated browser contexts: sign-up, a direct chat, live messages both ways, typing, reload with history and
// unread counts, a group, an encrypted file through Storage, an avatar, settings, sign-out, and signing in again
// (same browser, and a new device restoring the key backup). Each step asserts what the pages show. The test owns
// the app's port, so it is never parallel.
//
// Frontend quirks it works around as a user would: after sign-up the page lands back on /auth (a full load of /chat
// follows); the new-chat modal's Group tab throws after creating the group (the Direct tab with two people makes a
// group); restoring a v3.0 key backup reports "Wrong PIN" after importing the keys (the user skips to /chat); a
// new conversation reaches the other members' sidebars only by the 15 s poll or a reload.
func TestFrontend(t *testing.T) {
	if chromium.Path() == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (make test installs Debian's chromium)")
		}
		t.Skip("chromium is not installed")
	}
	app := strings.TrimRight(testenv.AppURL(t), "/")
	frontend := testenv.FrontendURL(t)
	supabase := testenv.SupabaseURL(t)
	redis := testenv.RedisURL(t)
	anon := testenv.Get(t, "SUPABASE_ANON_KEY")
	service := testenv.Get(t, "SUPABASE_SERVICE_ROLE_KEY")
	jwtSecret := testenv.Get(t, "SUPABASE_JWT_SECRET")
	for name, u := range map[string]string{"the frontend's page server": frontend + "/", "Supabase Auth": supabase + "/auth/v1/health"} {
		if err := reachable(u); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s at %s: %v", name, u, err)
			}
			t.Skipf("%s at %s is not answering (%v): start the stack (STACK_NAME=test scripts/stack.sh up)", name, u, err)
		}
	}

	f := &fixture{app: app, artifacts: filepath.Join(repoRoot(t), ".artifacts", "e2e")}
	_ = os.RemoveAll(f.artifacts)
	start := time.Now()

	// suparelay, on the origin the frontend was built for: its front door serves the pages (from the frontend's
	// page server), /api itself, and Supabase under /auth/v1, /rest/v1, /storage/v1.
	appURL, err := url.Parse(app)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", appURL.Host, time.Second); err == nil {
		c.Close()
		t.Fatalf("something already listens on %s (the test runs suparelay there)", appURL.Host)
	}
	tmp := t.TempDir()
	f.relayLog = filepath.Join(tmp, "suparelay.log")
	stop := startSuparelay(t, tmp, f.relayLog, map[string]string{
		"PORT": appURL.Port(), "LISTEN_ADDR": "127.0.0.1", "SUPABASE_URL": supabase, "SUPABASE_PUBLIC_URL": app, "SUPABASE_ANON_KEY": anon,
		"SUPABASE_SERVICE_ROLE_KEY": service, "SUPABASE_JWT_SECRET": jwtSecret, "FRONTEND_URL": frontend,
		"PROXY_SUPABASE": "true", "REDIS_URL": redis, "TRUSTED_PROXIES": "127.0.0.1", "EXPIRY_JOB_INTERVAL": "0",
		"RATE_LIMITS": "true", "LOG_FORMAT": "json", "LOG_LEVEL": "info",
	})
	t.Cleanup(func() {
		stop()
		// The server's log is kept whatever the outcome.
		if err := os.MkdirAll(f.artifacts, 0o755); err == nil {
			_ = copyFile(f.relayLog, filepath.Join(f.artifacts, "suparelay.log"))
		}
	})
	waitReady(t, app+"/readyz")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	b, err := chromium.Launch(ctx, chromium.Options{Dir: filepath.Join(tmp, "chromium")})
	if err != nil {
		t.Fatal(err)
	}
	f.b = b
	t.Cleanup(b.Close)

	suffix := testenv.RandomHex(3)
	// Client addresses of this run: rate-limit counts live in the shared Redis, so a rerun must not inherit the
	// budgets the previous run spent.
	o2, o3 := rand.IntN(256), rand.IntN(256)
	for i, label := range []string{"A", "B", "C"} {
		p, err := b.NewContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		u := &user{label: label, phone: testenv.TestPhone(t), username: "e2e_" + strings.ToLower(label) + "_" + suffix,
			display: map[string]string{"A": "Alice", "B": "Bob", "C": "Carol"}[label] + " " + suffix,
			ip:      fmt.Sprintf("10.%d.%d.%d", o2, o3, i+1), p: p, app: app}
		setupPage(t, ctx, u)
		f.users = append(f.users, u)
	}
	a, bob, c := f.users[0], f.users[1], f.users[2]
	var dm, group string

	f.step(t, "1-signup", func(t *testing.T, ctx context.Context) {
		for _, u := range f.users {
			t.Run(u.label, func(t *testing.T) {
				t.Parallel()
				signUp(t, ctx, u)
			})
		}
	})

	f.step(t, "2-direct-chat", func(t *testing.T, ctx context.Context) {
		a.do(t, ctx, "open the new chat modal", `click('button[aria-label="Create new chat"]')`)
		a.wait(t, ctx, "the new chat modal", `text('#modal-title') === 'Create New Chat' && $('#userSearch')`, 10*time.Second)
		pickUser(t, ctx, a, bob)
		a.wait(t, ctx, "one participant chosen", `text('.selected-users .user-chip span') === `+q(bob.display), 5*time.Second)
		a.press(t, ctx, "Start Chat", `$('button.create-button')`)
		a.wait(t, ctx, "the new DM selected", `!$('.modal-overlay') && $('button.conversation-item.active .conversation-id') &&
			text('.message-list .empty-state h3') === 'No messages yet'`, 20*time.Second)
		a.get(t, ctx, "the DM's id", `$('button.conversation-item.active .conversation-id').title`, &dm)
		assertEval(t, ctx, a, "the DM's sidebar item", `[section(`+q(dm)+`), convName(`+q(dm)+`)]`,
			[]any{"Direct Messages", bob.username})
		// B sees the new DM after a full load of /chat (the client does not add it live: it polls every 15 s).
		bob.openChat(t, ctx)
		bob.wait(t, ctx, "the DM in the sidebar", `conv(`+q(dm)+`)`, 20*time.Second)
		assertEval(t, ctx, bob, "the DM's sidebar item", `[section(`+q(dm)+`), convName(`+q(dm)+`)]`,
			[]any{"Direct Messages", a.username})
		bob.selectConversation(t, ctx, dm)
		bob.wait(t, ctx, "the empty DM", `text('.message-list .empty-state h3') === 'No messages yet'`, 10*time.Second)
	})

	f.step(t, "3-messages-live", func(t *testing.T, ctx context.Context) {
		a.mark(t, ctx)
		bob.mark(t, ctx)
		a.send(t, ctx, "hello from alice")
		bob.sees(t, ctx, a, "hello from alice", 20*time.Second)
		bob.send(t, ctx, "hello from bob")
		a.sees(t, ctx, bob, "hello from bob", 20*time.Second)
		a.unreloaded(t, ctx)
		bob.unreloaded(t, ctx)
	})

	f.step(t, "4-typing", func(t *testing.T, ctx context.Context) {
		for _, pair := range [][2]*user{{a, bob}, {bob, a}} {
			typist, reader := pair[0], pair[1]
			typist.do(t, ctx, "type without sending", `type('textarea[placeholder="Type a message..."]', 'I am typ')`)
			reader.wait(t, ctx, typist.label+" typing", `text('.message-list .typing-indicator .typing-text') === `+
				q(typist.display+" is typing..."), 10*time.Second)
			typist.do(t, ctx, "clear the composer", `type('textarea[placeholder="Type a message..."]', '')`)
			// typing/stop goes 3 s after the last input.
			reader.wait(t, ctx, "the typing indicator gone", `!$('.message-list .typing-indicator')`, 15*time.Second)
			reader.unreloaded(t, ctx)
		}
	})

	f.step(t, "5-reload-history-unread", func(t *testing.T, ctx context.Context) {
		history := []string{"hello from alice", "hello from bob"}
		// B reloads: nothing is selected, then the DM shows its history; selecting it marks it read.
		bob.openChat(t, ctx)
		bob.wait(t, ctx, "the welcome pane after reload", `!$('button.conversation-item.active') && conv(`+q(dm)+`) &&
			text('.select-chat-hint') === 'Select a conversation from the sidebar to start chatting'`, 20*time.Second)
		bob.selectConversation(t, ctx, dm)
		bob.wait(t, ctx, "the history", `messages().length === 2`, 20*time.Second)
		assertEqual(t, "B's history after reload", bob.messageTexts(t, ctx),
			[]string{a.display + ":" + history[0], "me:" + history[1]})
		// B leaves the conversation; A sends two messages B does not read.
		bob.do(t, ctx, "close the conversation", `click('button.back-button')`)
		bob.wait(t, ctx, "no conversation open", `!$('button.conversation-item.active') && !$('.message-list') && $('.select-chat-hint')`, 10*time.Second)
		a.send(t, ctx, "unread one")
		a.send(t, ctx, "unread two")
		bob.openChat(t, ctx)
		bob.wait(t, ctx, "the unread indicator", `conv(`+q(dm)+`)?.querySelector('.unread-indicator')?.title === '2 unread messages'`, 20*time.Second)
		bob.selectConversation(t, ctx, dm)
		bob.wait(t, ctx, "the whole history", `messages().length === 4`, 20*time.Second)
		assertEqual(t, "B's history", bob.messageTexts(t, ctx), []string{a.display + ":" + history[0], "me:" + history[1],
			a.display + ":unread one", a.display + ":unread two"})
		// Read now: after another reload the indicator is gone.
		bob.openChat(t, ctx)
		bob.wait(t, ctx, "the DM without unread indicator", `conv(`+q(dm)+`) && !conv(`+q(dm)+`).querySelector('.unread-indicator')`, 20*time.Second)
		// A's reload shows the same history from A's side.
		a.openChat(t, ctx)
		a.selectConversation(t, ctx, dm)
		a.wait(t, ctx, "the whole history", `messages().length === 4`, 20*time.Second)
		assertEqual(t, "A's history", a.messageTexts(t, ctx), []string{"me:" + history[0], bob.display + ":" + history[1],
			"me:unread one", "me:unread two"})
	})

	f.step(t, "6-group", func(t *testing.T, ctx context.Context) {
		// The "Group" tab of the modal throws after creating the group (a frontend bug); the Direct tab with two
		// people makes a group.
		a.do(t, ctx, "open the new chat modal", `click('button[aria-label="Create new chat"]')`)
		a.wait(t, ctx, "the new chat modal", `$('#userSearch')`, 10*time.Second)
		pickUser(t, ctx, a, bob)
		pickUser(t, ctx, a, c)
		a.wait(t, ctx, "two participants chosen", `texts('.selected-users .user-chip span').join('|') === `+q(bob.display+"|"+c.display), 5*time.Second)
		a.press(t, ctx, "Start Chat", `$('button.create-button')`)
		name := "Chat with " + bob.display + ", " + c.display
		a.wait(t, ctx, "the new group selected", `!$('.modal-overlay') && text('button.conversation-item.active .conversation-name') === `+q(name)+` &&
			text('.message-list .empty-state h3') === 'No messages yet'`, 20*time.Second)
		a.get(t, ctx, "the group's id", `$('button.conversation-item.active .conversation-id').title`, &group)
		assertEval(t, ctx, a, "the group's section", `section(`+q(group)+`)`, "Group Chats")
		a.mark(t, ctx)
		bob.mark(t, ctx)
		a.send(t, ctx, "hello group")
		c.openChat(t, ctx)
		c.wait(t, ctx, "the group in the sidebar", `convName(`+q(group)+`) === `+q(name)+` && section(`+q(group)+`) === 'Group Chats'`, 20*time.Second)
		c.selectConversation(t, ctx, group)
		c.sees(t, ctx, a, "hello group", 20*time.Second)
		c.send(t, ctx, "hi from carol")
		a.sees(t, ctx, c, "hi from carol", 20*time.Second)
		a.unreloaded(t, ctx)
		// B's page was loaded before the group existed: the group shows up by the sidebar's 15 s poll.
		bob.selectConversation(t, ctx, group)
		bob.wait(t, ctx, "the group's history", `messages().length === 2`, 20*time.Second)
		assertEqual(t, "B's view of the group", bob.messageTexts(t, ctx), []string{a.display + ":hello group", c.display + ":hi from carol"})
		bob.unreloaded(t, ctx)
	})

	f.step(t, "7-file", func(t *testing.T, ctx context.Context) {
		pic := pngBytes(t, 24, 16, suffix)
		a.selectConversation(t, ctx, dm)
		bob.selectConversation(t, ctx, dm)
		bob.wait(t, ctx, "the DM's history", `messages().length === 4`, 20*time.Second)
		a.wait(t, ctx, "the DM's history", `messages().length === 4`, 20*time.Second)
		a.do(t, ctx, "attach pic.png", `setFile('input[type=file][multiple]', 'pic.png', 'image/png', `+q(base64.StdEncoding.EncodeToString(pic))+`)`)
		a.wait(t, ctx, "the file ready", `text('.selected-files .files-ready-indicator span') === '1 file ready to send' &&
			text('.file-preview .file-name') === 'pic.png'`, 5*time.Second)
		a.press(t, ctx, "send the file", `$('button.send-button')`)
		img := `$$('.message-list .message-item%s').map(m => m.querySelector('img.inline-image[src^="blob:"][alt="pic.png"]')).filter(Boolean)[0]`
		theirs, mine := fmt.Sprintf(img, ":not(.own)"), fmt.Sprintf(img, ".own")
		bob.wait(t, ctx, "A's picture, decrypted", theirs, 45*time.Second)
		assertEval(t, ctx, bob, "the attachment's message", `(() => { const m = `+theirs+`.closest('.message-item');
			return [text('.sender-name', m), text('.media-filename', m), text('.message-text', m)]; })()`,
			[]any{a.display, "pic.png", "[File attachment]"})
		// The bytes behind the image's blob: URL (the Blob the app decrypted) are what A attached.
		picB64 := base64.StdEncoding.EncodeToString(pic)
		bob.wait(t, ctx, "the picture's bytes to equal the attached PNG", `window.__e2eBlobs.get(`+theirs+`.src)?.arrayBuffer().then(bytesb64)
			.then(b => b === `+q(picB64)+`)`, 15*time.Second)
		bob.wait(t, ctx, "the picture rendered", `(() => { const i = `+theirs+`; return i.complete && i.naturalWidth === 24 && i.naturalHeight === 16; })()`, 10*time.Second)
		a.wait(t, ctx, "A's own picture", mine, 30*time.Second)
		// The browser PUT the encrypted file to the signed upload URL on the app's own origin (suparelay's front door
		// in front of Storage), and it succeeded.
		assertEval(t, ctx, a, "the signed-URL uploads", `performance.getEntriesByType('resource')
			.filter(e => e.name.startsWith(`+q(app+"/storage/v1/object/upload/sign/encrypted-files/"+a.authID+"/"+dm+"/")+`))
			.map(e => [e.initiatorType, e.responseStatus])`, []any{[]any{"fetch", 200}})
		// The encrypted copy went to the real Storage: the object is in the encrypted-files bucket, under A's folder
		// and the conversation.
		db := testenv.DB(t)
		var n int
		if err := db.QueryRow(ctx, `select count(*) from storage.objects where bucket_id = 'encrypted-files' and name like $1`,
			a.authID+"/"+dm+"/%").Scan(&n); err != nil || n != 1 {
			t.Fatalf("encrypted-files objects under %s/%s: %d, %v; want 1", a.authID, dm, n, err)
		}
	})

	f.step(t, "8-avatar", func(t *testing.T, ctx context.Context) {
		av := pngBytes(t, 32, 32, "avatar"+suffix)
		a.waitAuthBudget(t, ctx)
		a.open(t, ctx, "/u/"+a.username)
		a.wait(t, ctx, "the profile page", `text('h1.profile-name') === `+q(a.display)+` && text('p.profile-username') === `+q("@"+a.username), 20*time.Second)
		a.wait(t, ctx, "the edit button", `$('button.avatar-edit-btn[aria-label="Change profile picture"]')`, 10*time.Second)
		a.do(t, ctx, "open the avatar upload", `click('button.avatar-edit-btn[aria-label="Change profile picture"]')`)
		a.wait(t, ctx, "the avatar upload", `text('.avatar-upload-section h3') === 'Update Profile Picture' && $('.avatar-upload-section input[type=file]')`, 10*time.Second)
		a.do(t, ctx, "choose the avatar", `setFile('.avatar-upload-section input[type=file]', 'me.png', 'image/png', `+q(base64.StdEncoding.EncodeToString(av))+`)`)
		a.wait(t, ctx, "the success message", `texts('.alert.alert-success').some(s => s.includes('Profile picture updated successfully!'))`, 20*time.Second)
		prefix := app + "/storage/v1/object/public/avatars/" + a.authID + "/"
		a.wait(t, ctx, "the new avatar", `$('.profile-avatar img')?.src.startsWith(`+q(prefix)+`)`, 10*time.Second)
		var src string
		a.get(t, ctx, "the avatar's URL", `$('.profile-avatar img').src`, &src)
		a.wait(t, ctx, "the avatar loaded", `(() => { const i = $('.profile-avatar img'); return i.complete && i.naturalWidth === 32; })()`, 10*time.Second)
		assertEval(t, ctx, a, "the stored user and the navbar", `[me().avatarUrl, $('button[aria-label="User menu"] .user-avatar img')?.src]`, []any{src, src})
		// The public URL serves exactly the uploaded bytes (fetched here, outside the browser, through suparelay).
		got, ctype := fetchBytes(t, src)
		if !bytes.Equal(got, av) {
			t.Fatalf("%s served %d bytes (%s), want the %d uploaded", src, len(got), ctype, len(av))
		}
		if ctype != "image/png" {
			t.Errorf("%s: Content-Type %q, want image/png", src, ctype)
		}
		// The avatar is A's stored one: the profile page, loaded again (server-rendered from the users row), shows it.
		a.open(t, ctx, "/u/"+a.username)
		a.wait(t, ctx, "the avatar after reload", `$('.profile-avatar img')?.src === `+q(src), 20*time.Second)
		// And B sees A's new avatar next to A's messages after a reload.
		bob.openChat(t, ctx)
		bob.selectConversation(t, ctx, dm)
		bob.wait(t, ctx, "A's avatar beside A's messages", `$$('.message-item:not(.own) img').some(i => i.src === `+q(src)+`)`, 20*time.Second)
	})

	f.step(t, "9-settings", func(t *testing.T, ctx context.Context) {
		a.open(t, ctx, "/settings")
		a.wait(t, ctx, "the settings sections", `$('.settings-sections') && !$('.error-state')`, 20*time.Second)
		a.wait(t, ctx, "Encryption Enabled", `document.querySelector('.settings-sections').innerText.includes('Encryption Enabled')`, 20*time.Second)
		assertEval(t, ctx, a, "the settings page", `[document.title, text('h1'), texts('.settings-sections h2').includes('Appearance'),
			!!$('select#theme-select'), text('button[aria-label="User menu"] .user-name')]`,
			[]any{"Settings - QryptChat", "Settings", true, true, a.display})
		// What the sign-up stored shows as such: the keys, the PIN, the server backup.
		for _, status := range []string{"Encryption keys are active.", "PIN is set ✅", "Server backup exists."} {
			a.wait(t, ctx, q(status), `texts('.settings-sections .status-line').includes(`+q(status)+`)`, 20*time.Second)
		}
	})

	f.step(t, "10-sign-out", func(t *testing.T, ctx context.Context) {
		cookie := "sb-" + strings.Split(appURL.Hostname(), ".")[0] + "-auth-token"
		for _, u := range []*user{a, bob} {
			if got := sessionCookies(t, ctx, u, cookie); len(got) == 0 {
				t.Fatalf("%s: no %s cookie before signing out", u.label, cookie)
			}
			u.do(t, ctx, "log out", `click('button.logout-item')`)
			u.wait(t, ctx, "the home page, signed out", `location.pathname === '/' && text('h1.hero-title') === 'QryptChat' &&
				button('Login') && !$('button[aria-label="User menu"]')`, 20*time.Second)
			assertEval(t, ctx, u, "the stored login", `[localStorage.getItem('qrypt_user'), localStorage.getItem('qrypt_session')]`, []any{nil, nil})
			if got := sessionCookies(t, ctx, u, cookie); len(got) != 0 {
				t.Fatalf("%s: cookies left after signing out: %v", u.label, got)
			}
			u.open(t, ctx, "/chat")
			u.wait(t, ctx, "the login page", `location.pathname === '/auth' && $('#phone')`, 20*time.Second)
		}
	})

	f.step(t, "11-sign-in-again", func(t *testing.T, ctx context.Context) {
		bob.waitAuthBudget(t, ctx)
		c.waitAuthBudget(t, ctx)
		// B, in the same browser (its keys still in IndexedDB), goes straight to /chat. No browser code writes the
		// session cookie for an existing user: it comes from verify-sms's Set-Cookie, and SSE depends on it.
		signIn(t, ctx, bob)
		bob.wait(t, ctx, "/chat right after the code", `location.pathname === '/chat' && online()`, 30*time.Second)
		cookie := "sb-" + strings.Split(appURL.Hostname(), ".")[0] + "-auth-token"
		if got := sessionCookies(t, ctx, bob, cookie); len(got) == 0 {
			t.Fatalf("B: no %s cookie after signing in again", cookie)
		}
		bob.selectConversation(t, ctx, dm)
		bob.wait(t, ctx, "the DM's history", `messages().length === 5`, 20*time.Second)
		assertEqual(t, "B's history after signing in again", bob.messageTexts(t, ctx), []string{a.display + ":hello from alice",
			"me:hello from bob", a.display + ":unread one", a.display + ":unread two", a.display + ":[File attachment]"})

		// C on a new device (a fresh browser context): the key backup is restored with the PIN, and the group's
		// history decrypts with the restored keys.
		p, err := b.NewContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c2 := *c
		c2.label, c2.p = "C-new-device", p
		f.users = append(f.users, &c2)
		setupPage(t, ctx, &c2)
		signIn(t, ctx, &c2)
		c2.wait(t, ctx, "the restore step", `text('.auth-step h2') === 'Restore Your Encryption Keys' && $('#restore-pin')`, 20*time.Second)
		c2.do(t, ctx, "type the PIN", `type('#restore-pin', `+q(pin)+`)`)
		c2.press(t, ctx, "Restore Keys", `button('Restore Keys')`)
		c2.wait(t, ctx, "the restore to end", `location.pathname === '/chat' ||
			texts('.messages-container .message-body').some(s => s.startsWith('Wrong PIN.'))`, 30*time.Second)
		var wrongPIN bool
		c2.get(t, ctx, "the restore's outcome", `location.pathname !== '/chat'`, &wrongPIN)
		if wrongPIN {
			// Frontend bug: importPrivateKeys clears a variable that only exists for v2.0 backups, so restoring a
			// v3.0 backup (what sign-up stores) throws after the keys are imported, and the page says "Wrong PIN".
			// The keys are in IndexedDB by then; the user skips to /chat with them.
			if !strings.Contains(strings.Join(c2.p.Console(), "\n"), "decryptionKey is not defined") {
				t.Fatalf("C-new-device: the restore failed, and not by the known frontend bug (see its console)")
			}
			t.Log("C-new-device: frontend bug: the v3.0 key restore reports \"Wrong PIN\" after importing the keys; skipping to /chat")
			c2.press(t, ctx, "Skip", `button('Skip', $('.auth-step'))`)
		}
		c2.wait(t, ctx, "/chat after the restore", `location.pathname === '/chat' && online()`, 30*time.Second)
		c2.selectConversation(t, ctx, group)
		c2.wait(t, ctx, "the group's history", `messages().length === 2`, 20*time.Second)
		assertEqual(t, "C's group history on the new device", c2.messageTexts(t, ctx), []string{a.display + ":hello group", "me:hi from carol"})
	})

	if t.Failed() {
		return
	}
	out, err := b.CheckLoopback()
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > 0 {
		t.Errorf("Chromium reached outside loopback: %v (log: %s)", out, b.LogPath())
	}
	t.Logf("frontend end-to-end run: %s", time.Since(start).Round(time.Second))
}

// step runs one step as a subtest with its own deadline. If it fails, the step's artifacts are saved and the rest
// is skipped (every step builds on the ones before).
func (f *fixture) step(t *testing.T, name string, fn func(t *testing.T, ctx context.Context)) {
	t.Helper()
	if t.Failed() {
		t.Run(name, func(t *testing.T) { t.Skip("an earlier step failed") })
		return
	}
	for _, u := range f.users {
		u.dialogs = len(u.p.Dialogs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ok := t.Run(name, func(t *testing.T) { fn(t, ctx) })
	// No step expects an alert or confirm: one means the page reported a failure.
	for _, u := range f.users {
		if d := u.p.Dialogs(); len(d) > u.dialogs {
			t.Errorf("step %s: %s got dialogs: %q", name, u.label, d[u.dialogs:])
			ok = false
		}
	}
	if !ok {
		dir := f.save(name)
		t.Errorf("step %s failed: screenshots, consoles, dialogs and the suparelay log are in %s", name, dir)
	}
}

// save writes each user's screenshot, page text, console and dialogs, and the server's log, to the step's folder.
func (f *fixture) save(step string) string {
	dir := filepath.Join(f.artifacts, step)
	_ = os.MkdirAll(dir, 0o755)
	for _, u := range f.users {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = u.p.Screenshot(ctx, filepath.Join(dir, u.label+".png"))
		var shown string
		_ = u.p.Eval(ctx, `location.href + '\n\n' + (document.body ? document.body.innerText : '')`, &shown)
		cancel()
		_ = os.WriteFile(filepath.Join(dir, u.label+".page.txt"), []byte(shown), 0o644)
		_ = os.WriteFile(filepath.Join(dir, u.label+".console.txt"), []byte(strings.Join(u.p.Console(), "\n")+"\n"), 0o644)
		_ = os.WriteFile(filepath.Join(dir, u.label+".dialogs.txt"), []byte(strings.Join(u.p.Dialogs(), "\n")+"\n"), 0o644)
	}
	_ = copyFile(f.relayLog, filepath.Join(dir, "suparelay.log"))
	if f.b != nil {
		_ = copyFile(f.b.LogPath(), filepath.Join(dir, "chromium.log"))
	}
	return dir
}

// pageSetup runs before the app's scripts on every document: English, and a record of the Blobs behind the blob:
// URLs the app creates. The page's CSP (connect-src 'self') forbids fetching a blob: URL, so the test reads an
// image's bytes from the recorded Blob instead.
const pageSetup = `try { localStorage.setItem('qrypt-language', 'en') } catch {}
window.__e2eBlobs = new Map();
const __e2eCreate = URL.createObjectURL.bind(URL);
URL.createObjectURL = o => { const u = __e2eCreate(o); if (o instanceof Blob) window.__e2eBlobs.set(u, o); return u; };`

// setupPage prepares a user's page: its own client address, the service worker bypassed (it serves / from cache),
// the analytics scripts blocked before any request starts, English, and focus emulated (no timer throttling).
func setupPage(t *testing.T, ctx context.Context, u *user) {
	t.Helper()
	if err := u.p.SetExtraHeaders(ctx, map[string]string{"X-Forwarded-For": u.ip}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method string
		params map[string]any
	}{
		{"Network.setBypassServiceWorker", map[string]any{"bypass": true}},
		{"Network.setBlockedURLs", map[string]any{"urls": blockedURLs}},
		{"Emulation.setFocusEmulationEnabled", map[string]any{"enabled": true}},
		{"Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": pageSetup}},
	} {
		if _, err := u.p.Call(ctx, c.method, c.params); err != nil {
			t.Fatalf("%s: %s: %v", u.label, c.method, err)
		}
	}
}

// signUp registers u through /auth: phone, the test OTP, username and display name, the backup PIN; then loads
// /chat in full and waits for the public key to reach the server (other users cannot encrypt for u before).
func signUp(t *testing.T, ctx context.Context, u *user) {
	u.open(t, ctx, "/auth")
	u.wait(t, ctx, "the phone field enabled", `text('.auth-step h2') === 'Enter your phone number' && $('#phone') && !$('#phone').disabled`, 30*time.Second)
	u.do(t, ctx, "type the phone", `type('#phone', `+q(u.phone)+`)`)
	u.authFrom = time.Now()
	u.press(t, ctx, "Send Code", `$('#phone').closest('form').querySelector('button[type=submit]')`)
	u.wait(t, ctx, "the code step", `text('.auth-step h2') === 'Enter verification code' && text('.step-description').includes(`+q(u.phone)+`)`, 20*time.Second)
	u.wait(t, ctx, "the code sent message", `texts('.messages-container .message-body').some(s => s.includes('Verification code sent successfully!'))`, 10*time.Second)
	// The sixth digit submits the code by itself.
	u.do(t, ctx, "enter the code", `type('#code', `+q(devkeys.TestOTP)+`)`)
	u.wait(t, ctx, "the profile step", `text('.auth-step h2') === 'Create Your Profile' && $('#username')`, 20*time.Second)
	u.do(t, ctx, "type the names", `type('#username', `+q(u.username)+`) && type('#displayName', `+q(u.display)+`)`)
	u.press(t, ctx, "Create Account", `button('Create Account')`)
	u.wait(t, ctx, "the backup PIN step", `text('.auth-step h2') === 'Set Your Backup PIN' && $('#backup-pin')`, 20*time.Second)
	u.do(t, ctx, "type the PIN twice", `type('#backup-pin', `+q(pin)+`) && type('#confirm-backup-pin', `+q(pin)+`)`)
	u.press(t, ctx, "Set Backup PIN", `button('Set Backup PIN')`)
	u.wait(t, ctx, "the welcome message", `texts('.messages-container .message-body').some(s => s.includes('Backup PIN set and keys backed up! Welcome to QryptChat!'))`, 30*time.Second)
	// Frontend quirk: the page goes to /chat before the auth store knows the user, and /chat sends it back to
	// /auth. A full load of /chat reads the stored login.
	u.wait(t, ctx, "back on /auth", `location.pathname === '/auth'`, 10*time.Second)
	u.openChat(t, ctx)
	u.wait(t, ctx, "the user's name in the sidebar", `text('.sidebar-header .user-name') === `+q(u.display), 10*time.Second)
	var me struct {
		ID, Username, DisplayName, PhoneNumber string
	}
	u.get(t, ctx, "the stored user", `me()`, &me)
	if me.ID == "" || me.Username != u.username || me.DisplayName != u.display || me.PhoneNumber != u.phone {
		t.Fatalf("%s: stored user %+v, want %s / %s / %s", u.label, me, u.username, u.display, u.phone)
	}
	u.id = me.ID
	u.get(t, ctx, "the auth uid", `session().user.id`, &u.authID)
	u.wait(t, ctx, "the public key on the server", `fetch('/api/crypto/public-keys?user_id=' + me().id).then(r => r.json()).then(j => !!j.public_key)`, 30*time.Second)
	// A new account has one conversation: its note to self (made by a database trigger).
	u.wait(t, ctx, "only the note to self in the sidebar", `$$('button.conversation-item').length === 1 &&
		$('button.conversation-item.is-note-to-self') && text('.conversation-name', $('button.conversation-item')) === 'Note to self'`, 20*time.Second)
}

// signIn signs an existing user in on /auth: phone, then the test OTP (the sixth digit submits it).
func signIn(t *testing.T, ctx context.Context, u *user) {
	t.Helper()
	u.open(t, ctx, "/auth")
	u.wait(t, ctx, "the phone field enabled", `text('.auth-step h2') === 'Enter your phone number' && $('#phone') && !$('#phone').disabled`, 30*time.Second)
	u.do(t, ctx, "type the phone", `type('#phone', `+q(u.phone)+`)`)
	u.press(t, ctx, "Send Code", `$('#phone').closest('form').querySelector('button[type=submit]')`)
	u.wait(t, ctx, "the code step", `text('.auth-step h2') === 'Enter verification code'`, 20*time.Second)
	u.do(t, ctx, "enter the code", `type('#code', `+q(devkeys.TestOTP)+`)`)
}

// pickUser searches other by username in the open new-chat modal and selects the result.
func pickUser(t *testing.T, ctx context.Context, u, other *user) {
	t.Helper()
	u.do(t, ctx, "search "+other.username, `type('#userSearch', `+q(other.username)+`)`)
	result := `$$('.search-results button.user-result').find(r => text('.user-handle', r) === ` + q("@"+other.username) + `)`
	u.wait(t, ctx, other.label+" in the search results", result+` && text('.user-name', `+result+`) === `+q(other.display), 15*time.Second)
	u.do(t, ctx, "select "+other.label, `click(`+result+`)`)
	u.wait(t, ctx, other.label+" selected", result+`.classList.contains('selected')`, 5*time.Second)
}

// sessionCookies returns the names of u's cookies for the app that belong to the Supabase session (the cookie or its
// chunks), read through DevTools (HttpOnly ones too).
func sessionCookies(t *testing.T, ctx context.Context, u *user, name string) []string {
	t.Helper()
	raw, err := u.p.Call(ctx, "Network.getCookies", map[string]any{"urls": []string{u.app + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Cookies []struct{ Name string } `json:"cookies"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range res.Cookies {
		if c.Name == name || strings.HasPrefix(c.Name, name+".") {
			out = append(out, c.Name)
		}
	}
	return out
}

func assertEval(t *testing.T, ctx context.Context, u *user, what, expr string, want any) {
	t.Helper()
	var got any
	u.get(t, ctx, what, expr, &got)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Fatalf("%s: %s = %s, want %s", u.label, what, gj, wj)
	}
}

func assertEqual(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// pngBytes encodes a w×h PNG whose pixels depend on seed, so that each run attaches different bytes.
func pngBytes(t *testing.T, w, h int, seed string) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			k := seed[(x+y)%len(seed)]
			img.Set(x, y, color.NRGBA{R: uint8(x * 10), G: uint8(y * 15), B: k, A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// client talks to the servers from the test process (own transport, bounded).
var client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{}}

func reachable(u string) error {
	res, err := client.Get(u)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode >= 500 {
		return fmt.Errorf("HTTP %d", res.StatusCode)
	}
	return nil
}

func fetchBytes(t *testing.T, u string) ([]byte, string) {
	t.Helper()
	res, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 10<<20))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %.200s", u, res.StatusCode, body)
	}
	return body, res.Header.Get("Content-Type")
}

// startSuparelay builds the server and runs it with env (over the test's own environment), logging to logPath. The
// returned function stops it (SIGTERM, then SIGKILL after 15 s).
func startSuparelay(t *testing.T, dir, logPath string, env map[string]string) (stop func()) {
	t.Helper()
	n := startNode(t, buildSuparelay(t, dir), dir, logPath, env)
	return func() { n.stop(15 * time.Second) }
}

// waitReady polls /readyz for up to 30 s.
func waitReady(t *testing.T, u string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := client.Get(u)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("HTTP %d", res.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("suparelay not ready at %s: %v", u, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// repoRoot is the module's root (the folder with go.mod above the test's working directory).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}
