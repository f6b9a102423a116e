package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/api"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// sendFault is what faultProxy does to the first api_send_message call that passes it.
type sendFault int32

const (
	passThrough  sendFault = iota
	dropAnswer             // forward it, let PostgREST commit and answer, then break the connection unanswered
	dropRequest            // break the connection without forwarding it
	delayRequest           // forward it only after delay, when the server has long given up on it
)

// faultProxy sits between the API and the stack's gateway (real PostgREST, real database) and breaks the first
// send the way networks and overloaded gateways do; every other request passes unchanged.
type faultProxy struct {
	t      testing.TB
	srv    *httptest.Server
	target *url.URL
	rp     *httputil.ReverseProxy
	fault  atomic.Int32
	delay  time.Duration
	fired  atomic.Bool
	// dropResolves: how many api_resolve_send calls to break before letting them through.
	dropResolves atomic.Int32
	done         chan struct{} // closed when the faulted call has finished upstream (or was dropped)
}

func newFaultProxy(t testing.TB, fault sendFault, delay time.Duration) *faultProxy {
	target, err := url.Parse(testenv.SupabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, target: target, delay: delay, done: make(chan struct{})}
	p.fault.Store(int32(fault))
	p.rp = &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host }}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/rest/v1/rpc/api_resolve_send" && p.dropResolves.Add(-1) >= 0 {
		p.t.Logf("proxy: dropping a resolution")
		p.hangUp(w)
		return
	}
	fault := sendFault(p.fault.Load())
	if r.URL.Path != "/rest/v1/rpc/api_send_message" || fault == passThrough || !p.fired.CompareAndSwap(false, true) {
		p.rp.ServeHTTP(w, r)
		return
	}
	defer close(p.done)
	switch fault {
	case dropAnswer:
		status := p.forward(r)
		p.t.Logf("proxy: PostgREST answered the send %d; dropping the answer", status)
		p.hangUp(w)
	case dropRequest:
		p.t.Logf("proxy: dropping the send before PostgREST sees it")
		p.hangUp(w)
	case delayRequest:
		// Hold it until the server's own deadline has passed, then let it reach PostgREST anyway (a request that
		// sat in some queue); the server has hung up by then.
		time.Sleep(p.delay)
		status := p.forward(r)
		p.t.Logf("proxy: the late send reached PostgREST, which answered %d", status)
		p.hangUp(w)
	}
}

// forward sends r upstream on its own (the caller may be gone) and returns PostgREST's status.
func (p *faultProxy) forward(r *http.Request) int {
	body, _ := io.ReadAll(r.Body)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	u := *p.target
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		p.t.Error(err)
		return 0
	}
	out.Header = r.Header.Clone()
	res, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		p.t.Errorf("proxy forward: %v", err)
		return 0
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// hangUp closes the client's connection without an answer.
func (p *faultProxy) hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.t.Errorf("hijack: %v", err)
		return
	}
	_ = conn.Close()
}

// waitDone waits for the faulted call to have finished upstream.
func (p *faultProxy) waitDone(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the faulted send never finished upstream")
	}
}

// outcomeHarness is the real API behind a faultProxy, with a short send deadline so that the test is quick.
func outcomeHarness(t *testing.T, fault sendFault, delay time.Duration, send time.Duration) (*harness, *faultProxy) {
	p := newFaultProxy(t, fault, delay)
	ts := newTestServer(t, testServerConfig{SupabaseURL: p.srv.URL, Adjust: func(c *api.Config) {
		c.UpstreamTimeouts = api.UpstreamTimeouts{Send: send}
	}})
	return &harness{t: t, srv: ts.srv, hub: ts.hub, client: ts.srv.Client()}, p
}

// A send whose outcome the server did not hear is resolved before it is answered: stored → 200 and NEW_MESSAGE
// exactly once; not stored → 503 JSON with Retry-After, nothing in the database, nothing announced — including a
// send that reaches PostgREST only after the server has given up on it.
func TestSendUnknownOutcome(t *testing.T) {
	testenv.SupabaseURL(t)
	t.Parallel()
	const send = 1500 * time.Millisecond
	countIn := func(t *testing.T, conv string) int64 {
		return dbScalar[int64](t, `select count(*) from messages where conversation_id = $1`, conv)
	}

	t.Run("committed, answer lost: found, announced, 200", func(t *testing.T) {
		t.Parallel()
		h, p := outcomeHarness(t, dropAnswer, 0, send)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "group", a, b)
		bs := h.openStream(b.Token(t, time.Hour))
		r := h.do("POST", "/api/messages/send", a.Token(t, time.Hour), map[string]any{"conversationId": conv,
			"encryptedContents": map[string]string{a.ID: `{"c":"a"}`, b.ID: `{"c":"b"}`}})
		mustStatus(t, r, 200)
		p.waitDone(t)
		m, _ := r.JSON(t)["message"].(map[string]any)
		if m == nil || m["conversation_id"] != conv || m["sender_id"] != a.ID {
			t.Fatalf("answer: %s", r.Body)
		}
		wantKeys := "content_hash,content_type,conversation_id,created_at,deleted_at,edited_at,encrypted_content,expires_at," +
			"has_attachments,id,message_type,metadata,reply_to_id,sender,sender_id"
		if keysOf(m) != wantKeys {
			t.Fatalf("message keys = %s, want %s", keysOf(m), wantKeys)
		}
		if ev := bs.expect("NEW_MESSAGE"); ev.Data["message"].(map[string]any)["id"] != m["id"] {
			t.Fatalf("NEW_MESSAGE for another message: %s", ev.Raw)
		}
		bs.quiet(200 * time.Millisecond)
		if n := countIn(t, conv); n != 1 {
			t.Fatalf("%d messages stored, want 1", n)
		}
		if n := dbScalar[int64](t, `select count(*) from deliveries where message_id = $1`, m["id"]); n != 1 {
			t.Fatalf("%d deliveries, want 1", n)
		}
	})

	t.Run("answer lost and the database unreachable for a while: 504, then announced late", func(t *testing.T) {
		t.Parallel()
		h, p := outcomeHarness(t, dropAnswer, 0, send)
		p.dropResolves.Store(3) // every resolution within the request fails
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "group", a, b)
		bs := h.openStream(b.Token(t, time.Hour))
		r := h.do("POST", "/api/messages/send", a.Token(t, time.Hour), map[string]any{"conversationId": conv,
			"encryptedContents": map[string]string{a.ID: `{"c":"a"}`, b.ID: `{"c":"b"}`}})
		wantErr(t, r, http.StatusGatewayTimeout, "Message delivery could not be confirmed yet")
		checkClean(t, r)
		p.waitDone(t)
		// The background resolution finds it stored and announces it.
		ev := bs.expect("NEW_MESSAGE")
		id, _ := ev.Data["message"].(map[string]any)["id"].(string)
		if n := dbScalar[int64](t, `select count(*) from messages where id = $1 and conversation_id = $2`, id, conv); n != 1 {
			t.Fatalf("NEW_MESSAGE for %s, which is not the stored message", id)
		}
		if n := countIn(t, conv); n != 1 {
			t.Fatalf("%d messages stored, want 1", n)
		}
	})

	t.Run("never reached PostgREST: known absent, 503", func(t *testing.T) {
		t.Parallel()
		h, p := outcomeHarness(t, dropRequest, 0, send)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "group", a, b)
		bs := h.openStream(b.Token(t, time.Hour))
		start := time.Now()
		r := h.do("POST", "/api/messages/send", a.Token(t, time.Hour), map[string]any{"conversationId": conv,
			"encryptedContents": map[string]string{a.ID: `{"c":"a"}`, b.ID: `{"c":"b"}`}})
		t.Logf("answered %d after %v", r.Status, time.Since(start).Round(time.Millisecond))
		p.waitDone(t)
		wantErr(t, r, http.StatusServiceUnavailable, "Message was not sent, please try again")
		checkClean(t, r)
		if r.Header.Get("Retry-After") == "" {
			t.Fatalf("503 without Retry-After")
		}
		bs.quiet(200 * time.Millisecond)
		if n := countIn(t, conv); n != 0 {
			t.Fatalf("%d messages stored, want 0", n)
		}
	})

	t.Run("reaches PostgREST after the deadline: refused by the database, 503", func(t *testing.T) {
		t.Parallel()
		h, p := outcomeHarness(t, delayRequest, send+1200*time.Millisecond, send)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "group", a, b)
		bs := h.openStream(b.Token(t, time.Hour))
		r := h.do("POST", "/api/chat/messages", a.Token(t, time.Hour), map[string]any{"conversation_id": conv,
			"encrypted_contents": map[string]string{a.ID: `{"c":"a"}`, b.ID: `{"c":"b"}`}})
		wantErr(t, r, http.StatusServiceUnavailable, "Message was not sent, please try again")
		p.waitDone(t) // the late send has run in the database by now
		bs.quiet(200 * time.Millisecond)
		if n := countIn(t, conv); n != 0 {
			t.Fatalf("%d messages stored by the late send, want 0", n)
		}
	})
}

// A send through suparelay keeps its per-member state in deliveries only (no legacy message_status rows); any other
// insert into messages — the original Node server's, until cutover — still gets production's message_status rows.
func TestSendWritesNoLegacyStatusRows(t *testing.T) {
	testenv.SupabaseURL(t)
	t.Parallel()
	h := newHarness(t)
	a, b, c := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
	conv := newConv(t, h, "group", a, b, c)
	m := sendText(t, h, a, conv, "hello", b, c)
	for table, want := range map[string]int64{"message_recipients": 3, "deliveries": 2, "message_status": 0} {
		if n := dbScalar[int64](t, `select count(*) from `+table+` where message_id = $1`, m["id"]); n != want {
			t.Errorf("%s: %d rows for a suparelay send, want %d", table, n, want)
		}
	}
	var legacy string
	if err := testenv.DB(t).QueryRow(t.Context(), `insert into messages (conversation_id, sender_id, encrypted_content)
		values ($1, $2, ''::bytea) returning id::text`, conv, a.ID).Scan(&legacy); err != nil {
		t.Fatal(err)
	}
	if n := dbScalar[int64](t, `select count(*) from message_status where message_id = $1`, legacy); n != 2 {
		t.Errorf("message_status: %d rows for the original's kind of insert, want 2", n)
	}
}
