package middleware

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qryptchat/suparelay/internal/authsession"
)

// Refresher exchanges a refresh token for a new session: POST <SUPABASE_URL>/auth/v1/token?grant_type=refresh_token
// with the anon apikey (auth.md §7–8). It is defined here, where it is consumed; supa's Auth client implements it.
//
// Contract for implementations: an Auth 4xx answer (refresh_token_not_found, refresh_token_already_used, invalid)
// returns an error wrapping authsession.ErrRejected; anything else (network error, timeout, 5xx) is an outage and
// returns any other error. On success Session.Raw must hold the full session JSON as Auth returned it
// (authsession.Parse keeps it).
type Refresher interface {
	RefreshSession(ctx context.Context, refreshToken string) (*authsession.Session, error)
}

// Refresh timing (auth.md §7: refresh tokens are single-use, reuse interval 10 s).
const (
	refreshResultTTL  = 30 * time.Second // how long an exchange's result is reused; must be >= 10 s
	refreshTimeout    = 10 * time.Second // one exchange with Auth
	refreshLockTTL    = 15 * time.Second // cross-node lock; longer than refreshTimeout so it cannot lapse mid-call
	refreshWaitMax    = 5 * time.Second  // how long a node waits for another node's exchange
	refreshPoll       = 50 * time.Millisecond
	refreshMemMax     = 10000 // remembered results per node
	sharedKeyResult   = "refresh:res:"
	sharedKeyLock     = "refresh:lock:"
	errUnavailableMsg = "another node holds the refresh lock and produced no result in time"
)

// Exchanges in progress on this node. A browser's requests share one (single-flight per refresh token), so a user
// has about one per device; but a cookie is client-made, and one genuine expired access token paired with made-up
// refresh tokens would otherwise start a goroutine and a call to Auth per request (Authenticate runs before the
// rate limits), without bound, spending the node's own budget at Auth's rate limiter too.
const (
	refreshFlightsPerUser = 4
	refreshFlightsMax     = 10000
)

// refresher makes sure each refresh token is exchanged at most once: concurrent requests on this node share one
// call (single-flight keyed by SHA-256 of the token), results are remembered for refreshResultTTL, and with a
// SharedStore the same holds across nodes (lock key + result key, result encrypted under the old refresh token).
type refresher struct {
	ex     Refresher
	shared SharedStore
	log    *slog.Logger

	mu      sync.Mutex
	flights map[string]*flight
	owners  map[string]int // flights in progress per owner (refreshOwner)
	results map[string]memResult
}

// errRefreshBusy is an outage-class error (not ErrRejected): the cookie is kept, the request gets 503 unless its
// token is still valid, and the next request may try again.
var errRefreshBusy = errors.New("too many session refreshes in progress for this user on this node")

type flight struct {
	owner string
	done  chan struct{}
	sess  *authsession.Session
	err   error
}

type memResult struct {
	sess     *authsession.Session
	rejected error // non-nil: Auth refused this token
	until    time.Time
}

func newRefresher(ex Refresher, shared SharedStore, log *slog.Logger) *refresher {
	return &refresher{ex: ex, shared: shared, log: log, flights: map[string]*flight{}, owners: map[string]int{},
		results: map[string]memResult{}}
}

// refreshOwner names whose exchange this is, for refreshFlightsPerUser: the sub of the session's access token.
// Reading it unverified is sound here because Authenticate refreshes only after Verify found the token genuine
// (valid, or ErrTokenExpired, which the verifier reports only after the signature checked out). A token without a
// readable sub counts under its own hash.
func refreshOwner(accessToken string) string {
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(accessToken, &c); err == nil && c.Subject != "" {
		return "sub:" + c.Subject
	}
	sum := sha256.Sum256([]byte(accessToken))
	return "tok:" + hex.EncodeToString(sum[:16])
}

// do returns the session that replaces the one holding refreshToken; owner is refreshOwner of its access token.
func (rf *refresher) do(ctx context.Context, owner, refreshToken string) (*authsession.Session, error) {
	sum := sha256.Sum256([]byte(refreshToken))
	key := hex.EncodeToString(sum[:])
	now := time.Now()

	rf.mu.Lock()
	if res, ok := rf.results[key]; ok && now.Before(res.until) {
		rf.mu.Unlock()
		return res.sess, res.rejected
	}
	f, joined := rf.flights[key]
	if !joined {
		if rf.owners[owner] >= refreshFlightsPerUser || len(rf.flights) >= refreshFlightsMax {
			rf.mu.Unlock()
			return nil, errRefreshBusy
		}
		f = &flight{owner: owner, done: make(chan struct{})}
		rf.flights[key] = f
		rf.owners[owner]++
	}
	rf.mu.Unlock()

	if !joined {
		// The exchange must not die with the first requester: the others wait on it, and a half-done exchange
		// would burn the single-use token.
		go rf.run(context.WithoutCancel(ctx), key, refreshToken, f)
	}
	select {
	case <-f.done:
		return f.sess, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("refresh abandoned: %w", ctx.Err())
	}
}

func (rf *refresher) run(ctx context.Context, key, refreshToken string, f *flight) {
	f.sess, f.err = rf.exchange(ctx, key, refreshToken)
	rf.mu.Lock()
	delete(rf.flights, key)
	if rf.owners[f.owner]--; rf.owners[f.owner] <= 0 {
		delete(rf.owners, f.owner)
	}
	if f.err == nil || errors.Is(f.err, authsession.ErrRejected) {
		rf.remember(key, memResult{sess: f.sess, rejected: f.err, until: time.Now().Add(refreshResultTTL)})
	}
	rf.mu.Unlock()
	close(f.done)
}

// remember stores a result; called with rf.mu held. Expired results are purged when the map is full, and if it is
// still full the new result is simply not remembered locally (single-flight still holds).
func (rf *refresher) remember(key string, res memResult) {
	if len(rf.results) >= refreshMemMax {
		now := time.Now()
		for k, r := range rf.results {
			if now.After(r.until) {
				delete(rf.results, k)
			}
		}
		if len(rf.results) >= refreshMemMax {
			return
		}
	}
	rf.results[key] = res
}

// exchange performs (or, across nodes, obtains) the one exchange for this token.
func (rf *refresher) exchange(ctx context.Context, key, refreshToken string) (*authsession.Session, error) {
	if rf.shared == nil {
		return rf.call(ctx, refreshToken)
	}
	deadline := time.Now().Add(refreshWaitMax)
	// A token of our own, so that releasing the lock can never remove another node's (after ours expired).
	lockVal := make([]byte, 16)
	_, _ = rand.Read(lockVal)
	for time.Now().Before(deadline) {
		if res, ok, err := rf.sharedResult(ctx, key, refreshToken); err != nil {
			return rf.sharedDown(ctx, refreshToken, err)
		} else if ok {
			return res.sess, res.rejected
		}
		got, err := rf.shared.SetNX(ctx, sharedKeyLock+key, lockVal, refreshLockTTL)
		if err != nil {
			return rf.sharedDown(ctx, refreshToken, err)
		}
		if got {
			// The holder before us may have stored its result and unlocked between our look and our lock: look
			// again before calling Auth, or the token would be exchanged twice.
			if res, ok, err := rf.sharedResult(ctx, key, refreshToken); err == nil && ok {
				if derr := rf.shared.DelIfValue(ctx, sharedKeyLock+key, lockVal); derr != nil {
					rf.log.WarnContext(ctx, "auth: could not release refresh lock", "err", derr)
				}
				return res.sess, res.rejected
			}
			sess, err := rf.call(ctx, refreshToken)
			if err == nil || errors.Is(err, authsession.ErrRejected) {
				if serr := rf.storeShared(ctx, key, refreshToken, sess, err); serr != nil {
					rf.log.WarnContext(ctx, "auth: could not share refresh result", "err", serr)
				}
			}
			// Result first, then unlock: a node that takes the lock next finds the result before calling Auth.
			if derr := rf.shared.DelIfValue(ctx, sharedKeyLock+key, lockVal); derr != nil {
				rf.log.WarnContext(ctx, "auth: could not release refresh lock", "err", derr)
			}
			return sess, err
		}
		t := time.NewTimer(refreshPoll)
		<-t.C
	}
	return nil, errors.New(errUnavailableMsg)
}

// sharedDown keeps users logged in when the shared store fails: exchange locally (single-flight still holds on this
// node; Auth's 10 s reuse interval covers a concurrent exchange on another node).
func (rf *refresher) sharedDown(ctx context.Context, refreshToken string, err error) (*authsession.Session, error) {
	rf.log.WarnContext(ctx, "auth: shared store unavailable; refreshing without cross-node single-flight", "err", err)
	return rf.call(ctx, refreshToken)
}

// call is the one real exchange with Auth, normalised so the cookie written is one the browser accepts.
func (rf *refresher) call(ctx context.Context, refreshToken string) (*authsession.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	sess, err := rf.ex.RefreshSession(ctx, refreshToken)
	if err != nil {
		return nil, err
	}
	if sess == nil || sess.AccessToken == "" || sess.RefreshToken == "" || len(sess.Raw) == 0 {
		return nil, errors.New("refresher returned an incomplete session")
	}
	return sess.WithExpiresAt(time.Now())
}
