package supa_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
	"github.com/qryptchat/suparelay/supa"
)

// A send that PostgreSQL picks as a deadlock victim is retried with the same id, against the real stack: a
// transaction T of the test locks the recipient's users row FOR UPDATE, which blocks the send's foreign-key check
// (message_recipients → users) while the send holds its advisory lock on the message id; then T asks for that
// advisory lock. The send has been waiting longest, so its backend's deadlock check (deadlock_timeout after it began
// to wait) finds the cycle first and aborts the send's transaction; T then gets the lock and is rolled back, and the
// retry goes through.

// answer is one PostgREST answer to rpc/api_send_message as the client received it.
type answer struct {
	Status int
	Code   string // the JSON code of an error answer
}

// recorder is the client's real transport, with the status and error code of every api_send_message answer
// recorded on the way through (the body is read and handed on unchanged).
type recorder struct {
	next    http.RoundTripper
	mu      sync.Mutex
	answers []answer
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/rpc/api_send_message") {
		return resp, err
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	a := answer{Status: resp.StatusCode}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(body, &e)
		a.Code = e.Code
	}
	r.mu.Lock()
	r.answers = append(r.answers, a)
	r.mu.Unlock()
	return resp, rerr
}

func (r *recorder) got() []answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.answers)
}

// deadlockSetup is a two-member conversation (sender a, recipient b) and a client whose send answers are recorded.
type deadlockSetup struct {
	db       *pgx.Conn // superuser, for setup and observation
	rec      *recorder
	rest     supa.Rest // as a
	a, b     testenv.User
	conv     string
	contents map[string]string
	timeout  time.Duration // the database's deadlock_timeout
}

func newDeadlockSetup(t *testing.T) *deadlockSetup {
	t.Helper()
	rec := &recorder{next: &http.Transport{}}
	c, err := supa.New(supa.Config{URL: testenv.SupabaseURL(t), AnonKey: devkeys.AnonKey(), Timeout: 20 * time.Second,
		Transport: rec})
	if err != nil {
		t.Fatal(err)
	}
	s := &deadlockSetup{db: testenv.DB(t), rec: rec, a: testenv.NewUser(t), b: testenv.NewUser(t)}
	ctx := context.Background()
	if err := s.db.QueryRow(ctx, `insert into conversations (type, name, created_by) values ('group', 'deadlock', $1)
		returning id::text`, s.a.ID).Scan(&s.conv); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `insert into conversation_participants (conversation_id, user_id) values ($1, $2)
		on conflict do nothing`, s.conv, s.b.ID); err != nil {
		t.Fatal(err)
	}
	var ms float64
	if err := s.db.QueryRow(ctx, `select extract(epoch from current_setting('deadlock_timeout')::interval) * 1000`).
		Scan(&ms); err != nil {
		t.Fatal(err)
	}
	s.timeout = time.Duration(ms * float64(time.Millisecond))
	s.rest = c.As(s.a.Token(t, time.Hour))
	s.contents = map[string]string{s.a.ID: `{"c":"a"}`, s.b.ID: `{"c":"b"}`}
	return s
}

// deadlockRun is what happened in one provoked deadlock.
type deadlockRun struct {
	sent    supa.SentMessage
	sendErr error
	lockErr error         // T's wait for the advisory lock: nil when the send was the victim
	late    time.Duration // how long the send had been waiting when T asked for the lock
}

// provoke runs m (m.ID set) into a deadlock with a transaction T of the test, as described above, and returns once
// the send has returned and T is rolled back.
func (s *deadlockSetup) provoke(t *testing.T, m supa.NewMessage) deadlockRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	txConn := testenv.DB(t)
	tx, err := txConn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) // for an early failure; a no-op after the rollback below
	var tPid int32
	if err := tx.QueryRow(ctx, `select pg_backend_pid()`).Scan(&tPid); err != nil {
		t.Fatal(err)
	}
	// A guard against a hang; far above deadlock_timeout, so that it never decides the outcome.
	if _, err := tx.Exec(ctx, `set local statement_timeout = '20s'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `select 1 from public.users where id = $1 for update`, s.b.ID); err != nil {
		t.Fatal(err)
	}

	var run deadlockRun
	done := make(chan struct{})
	go func() {
		defer close(done)
		run.sent, run.sendErr = s.rest.SendMessage(ctx, m)
	}()

	// Wait until the send's backend holds the advisory lock of m.ID (an int8 key: classid = high 32 bits, objid =
	// low 32 bits, objsubid 1) and is blocked by T.
	waiting := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		var n int
		err := s.db.QueryRow(ctx, `
			with k as (select public.api_send_lock_key($1::uuid) as key)
			select count(*) from pg_locks l, k
			 where l.locktype = 'advisory' and l.granted and l.objsubid = 1
			   and l.database = (select oid from pg_database where datname = current_database())
			   and l.classid = ((k.key >> 32) & 4294967295)::oid and l.objid = (k.key & 4294967295)::oid
			   and $2::int = any(pg_blocking_pids(l.pid))`, m.ID, tPid).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			waiting = true
			break
		}
		select {
		case <-done:
			t.Fatalf("the send returned before it waited for T: %v", run.sendErr)
		default:
		}
	}
	if !waiting {
		t.Fatal("the send's backend never held its advisory lock while blocked by T")
	}
	// How long the send has been waiting: T must ask for the lock before the send's deadlock check runs, or the
	// check finds no cycle and T becomes the victim instead.
	var lateMs float64
	if err := s.db.QueryRow(ctx, `select coalesce(max(extract(epoch from now() - waitstart) * 1000), 0) from pg_locks
		where not granted and $1::int = any(pg_blocking_pids(pid))`, tPid).Scan(&lateMs); err != nil {
		t.Fatal(err)
	}
	run.late = time.Duration(lateMs * float64(time.Millisecond))
	_, run.lockErr = tx.Exec(ctx, `select pg_advisory_xact_lock(public.api_send_lock_key($1::uuid))`, m.ID)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	return run
}

// deadlocks reads pg_stat_database.deadlocks of the database (statistics of other backends arrive with a delay).
func (s *deadlockSetup) deadlocks(t *testing.T) int64 {
	t.Helper()
	var n int64
	if err := s.db.QueryRow(context.Background(), `select deadlocks from pg_stat_database
		where datname = current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func isSQLState(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// victimCheck fails the test unless the send (and not T) was the deadlock victim.
func victimCheck(t *testing.T, s *deadlockSetup, run deadlockRun) {
	t.Helper()
	if run.lockErr != nil {
		if isSQLState(run.lockErr, "40P01") {
			t.Fatalf("T was the deadlock victim, not the send (T asked for the lock %v after the send began to wait; "+
				"deadlock_timeout %v): the send never saw a deadlock, so this run tests nothing", run.late, s.timeout)
		}
		t.Fatalf("T's wait for the advisory lock: %v", run.lockErr)
	}
}

func TestSendMessageRetriesDeadlockVictim(t *testing.T) {
	t.Parallel()
	s := newDeadlockSetup(t)
	ctx := context.Background()
	before := s.deadlocks(t)
	id := "6f1c1c2e-8d2b-4c57-9a43-" + testenv.RandomHex(6)
	t0 := time.Now()
	run := s.provoke(t, supa.NewMessage{ID: id, NotAfter: time.Now().Add(s.timeout + 5*time.Second),
		ConversationID: s.conv, Contents: s.contents})
	t.Logf("send returned after %v (T asked for the lock %v into the send's wait; deadlock_timeout %v); answers %+v",
		time.Since(t0), run.late, s.timeout, s.rec.got())
	victimCheck(t, s, run)

	// T held b's row until it got the advisory lock, which the first attempt held until its transaction ended:
	// that attempt cannot have committed, so a stored message is the retry's.
	want := []answer{{Status: 500, Code: "40P01"}, {Status: 200}}
	if got := s.rec.got(); !slices.Equal(got, want) {
		t.Errorf("api_send_message answers %+v, want %+v (a deadlock victim, then the retry)", got, want)
	}
	if run.sendErr != nil {
		t.Fatalf("send: %v, want success after the retry", run.sendErr)
	}
	var row map[string]any
	if err := json.Unmarshal(run.sent.Message, &row); err != nil || row["id"] != id || len(run.sent.Participants) != 2 {
		t.Fatalf("sent = %s %v (%v), want id %s and 2 participants", run.sent.Message, run.sent.Participants, err, id)
	}
	var n int
	if err := s.db.QueryRow(ctx, `select count(*) from messages where id = $1`, id).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d messages rows with the id (%v), want 1", n, err)
	}
	var copies, deliveries []string
	if err := s.db.QueryRow(ctx, `select
		  (select coalesce(array_agg(recipient_user_id::text order by recipient_user_id), '{}') from message_recipients
		    where message_id = $1),
		  (select coalesce(array_agg(recipient_user_id::text order by recipient_user_id), '{}') from deliveries
		    where message_id = $1)`, id).Scan(&copies, &deliveries); err != nil {
		t.Fatal(err)
	}
	wantCopies := []string{s.a.ID, s.b.ID}
	slices.Sort(wantCopies)
	if !slices.Equal(copies, wantCopies) || !slices.Equal(deliveries, []string{s.b.ID}) {
		t.Errorf("copies for %v, deliveries for %v; want copies for %v and a delivery for %s", copies, deliveries,
			wantCopies, s.b.ID)
	}

	// The database counted the deadlock (other backends' statistics reach pg_stat_database within a few seconds).
	after := before
	for end := time.Now().Add(15 * time.Second); after == before && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		after = s.deadlocks(t)
	}
	if after == before {
		t.Errorf("pg_stat_database.deadlocks stayed at %d", before)
	}
	t.Logf("test took %v", time.Since(t0))
}

// A deadlock victim is not retried once NotAfter has passed: the deadlock error comes back, as a definite failure.
func TestSendMessageDeadlockPastNotAfter(t *testing.T) {
	t.Parallel()
	s := newDeadlockSetup(t)
	id := "6f1c1c2e-8d2b-4c57-9a43-" + testenv.RandomHex(6)
	// The deadlock is detected deadlock_timeout after the send began to wait, so NotAfter has passed by then.
	notAfter := time.Now().Add(s.timeout / 3)
	run := s.provoke(t, supa.NewMessage{ID: id, NotAfter: notAfter, ConversationID: s.conv, Contents: s.contents})
	victimCheck(t, s, run)
	var e *supa.Error
	if !errors.As(run.sendErr, &e) || e.Status != 500 || e.Code != "40P01" {
		t.Fatalf("send: %v, want the deadlock (HTTP 500, code 40P01)", run.sendErr)
	}
	if supa.OutcomeUnknown(run.sendErr) {
		t.Errorf("OutcomeUnknown(%v) = true, want false: a deadlock victim's transaction is rolled back", run.sendErr)
	}
	if got, want := s.rec.got(), []answer{{Status: 500, Code: "40P01"}}; !slices.Equal(got, want) {
		t.Errorf("api_send_message answers %+v, want %+v (no retry past NotAfter)", got, want)
	}
	var n int
	if err := s.db.QueryRow(context.Background(), `select count(*) from messages where id = $1`, id).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d messages rows with the id (%v), want 0", n, err)
	}
}

// Rolled-back transactions (deadlock victim, serialization failure) are known outcomes, unlike the rest of
// PostgREST's 500s; 40003 (statement_completion_unknown) stays unknown.
func TestOutcomeUnknownRolledBack(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&supa.Error{Op: "rpc", Status: 500, Code: "40P01", Message: "deadlock detected"}, false},
		{&supa.Error{Op: "rpc", Status: 500, Code: "40001"}, false},
		{&supa.Error{Op: "rpc", Status: 500, Code: "40003"}, true},
		{&supa.Error{Op: "rpc", Status: 500, Code: "XX000"}, true},
		{&supa.Error{Op: "rpc", Code: "40P01", Err: errors.New("no answer")}, true},
	} {
		if got := supa.OutcomeUnknown(tc.err); got != tc.want {
			t.Errorf("OutcomeUnknown(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
