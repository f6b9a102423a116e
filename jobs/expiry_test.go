package jobs_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
	"github.com/qryptchat/suparelay/jobs"
	"github.com/qryptchat/suparelay/supa"
)

// TestExpiryJobTwoNodes runs the real expiry job (fn_cleanup_expired_messages through PostgREST with the service
// role) on two "nodes" that share one real Redis lock, against the real database: every expired copy is removed,
// no live copy is touched, deliveries of removed copies are marked deleted, and no window runs on both nodes.
func TestExpiryJobTwoNodes(t *testing.T) {
	db := testenv.DB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, b := testenv.NewUser(t), testenv.NewUser(t)
	var conv, msg string
	if err := db.QueryRow(ctx, `insert into conversations (type, created_by) values ('direct', $1) returning id::text`, a.ID).Scan(&conv); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `insert into conversation_participants (conversation_id, user_id) values ($1, $2) on conflict do nothing`, conv, b.ID); err != nil {
		t.Fatal(err)
	}
	const n = 25
	var ids []string
	for i := 0; i < n; i++ {
		if err := db.QueryRow(ctx, `insert into messages (conversation_id, sender_id, encrypted_content) values ($1, $2, '') returning id::text`, conv, a.ID).Scan(&msg); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, msg)
		if _, err := db.Exec(ctx, `insert into message_recipients (message_id, recipient_user_id, encrypted_content, expires_at)
			values ($1, $2, 'eA==', now() - interval '1 minute'), ($1, $3, 'eA==', now() + interval '1 day')`, msg, a.ID, b.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `insert into deliveries (message_id, recipient_user_id, delivered_ts) values ($1, $2, now())`, msg, a.ID); err != nil {
			t.Fatal(err)
		}
	}
	client, err := supa.New(supa.Config{URL: testenv.SupabaseURL(t), AnonKey: devkeys.AnonKey(), ServiceRoleKey: devkeys.ServiceRoleKey()})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	prefix := "test:expiry:" + testenv.RandomHex(6) + ":"

	var mu sync.Mutex
	removed := map[string]int{}         // node → copies removed
	windows := map[time.Time][]string{} // window → nodes that ran it
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, node := range []string{"A", "B"} {
		r, err := jobs.NewRunner(jobs.RunnerConfig{Name: "expire-messages", Interval: 300 * time.Millisecond,
			Lock: jobs.NewRedisLocker(rdb, prefix), Run: func(ctx context.Context) (int, error) {
				k, err := client.CleanupExpiredMessages(ctx)
				w, _ := jobs.TickFrom(ctx)
				mu.Lock()
				removed[node] += k
				windows[w] = append(windows[w], node)
				mu.Unlock()
				return k, err
			}})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(runCtx) }()
	}
	remaining := func() int {
		var left int
		if err := db.QueryRow(ctx, `select count(*) from message_recipients where message_id = any($1::uuid[]) and recipient_user_id = $2`, ids, a.ID).Scan(&left); err != nil {
			t.Fatal(err)
		}
		return left
	}
	deadline := time.Now().Add(20 * time.Second)
	for remaining() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d expired copies still there after 20 s", remaining())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(700 * time.Millisecond) // let a few more windows run: they must find nothing of ours
	stop()
	wg.Wait()

	var live int
	if err := db.QueryRow(ctx, `select count(*) from message_recipients where message_id = any($1::uuid[]) and recipient_user_id = $2`, ids, b.ID).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if live != n {
		t.Fatalf("unexpired copies left = %d, want %d", live, n)
	}
	mu.Lock()
	defer mu.Unlock()
	// Other tests of the run share the database and may call the (global) cleanup too, so the copies removed by
	// these two nodes are not asserted as a number; what is asserted is that the job ran, only ever on one node per
	// window, and that every expired copy is gone while every live one stays.
	if len(windows) == 0 {
		t.Fatal("the job never ran")
	}
	t.Logf("removals: node A %d, node B %d, windows run %d", removed["A"], removed["B"], len(windows))
	for w, nodes := range windows {
		if len(nodes) != 1 {
			t.Fatalf("window %v ran on %v", w, nodes)
		}
	}
	var delivered int
	if err := db.QueryRow(ctx, `select count(*) from deliveries where message_id = any($1::uuid[]) and deleted_ts is null and recipient_user_id = $2`, ids, a.ID).Scan(&delivered); err != nil {
		t.Fatal(err)
	}
	if delivered != 0 {
		t.Fatalf("%d deliveries of removed copies not marked deleted", delivered)
	}
}
