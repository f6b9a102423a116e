package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Store keeps the deliveries that are waiting, the schedule of their next attempts and who is attempting one right
// now. The Deliverer holds no delivery in memory beyond the attempt it is making, so what survives a restart or
// the loss of a node is exactly what the Store survives: [NewRedisStore] survives both (one Redis shared by every
// node), [NewMemoryStore] neither (a single node without Redis).
//
// A delivery goes due → claimed (leased to one claimer) → removed (delivered or dead) or due again (retry, released
// claim, or a lease that ran out because its claimer died). Implementations must make each step atomic, so that
// one delivery is never claimed by two claimers at once while its lease runs.
type Store interface {
	// Add queues job under id, due at once, and reports false (with no error) when max deliveries are already
	// waiting or claimed.
	Add(ctx context.Context, id string, job []byte, max int) (bool, error)
	// Claim leases up to n due deliveries for lease. It also makes due again every delivery whose lease ran out,
	// and tells how long until the next one becomes due or its lease ends (negative: nothing pending) and how
	// many deliveries are pending in all.
	Claim(ctx context.Context, n int, lease time.Duration) (ClaimResult, error)
	// Done removes a claimed delivery (delivered, or dead after its last attempt). It reports false when the
	// claim was no longer held: the lease ran out and another claimer may have the delivery now.
	Done(ctx context.Context, c Claim) (bool, error)
	// Retry gives a claimed delivery back, due after delay. counted=false also takes back the attempt (one that
	// was interrupted by shutdown, not answered by the receiver). It reports false when the claim was lost.
	Retry(ctx context.Context, c Claim, delay time.Duration, counted bool) (bool, error)
}

// Claim is one leased delivery. Token tells this claim apart from later claims of the same delivery.
type Claim struct {
	ID      string
	Token   string
	Attempt int    // this attempt's number, 1 for the first; counts attempts of crashed claimers too
	Job     []byte // as given to Add
}

// ClaimResult is what [Store.Claim] found.
type ClaimResult struct {
	Claims  []Claim
	Next    time.Duration // until the earliest due time or lease end among the rest; < 0: none pending
	Pending int           // deliveries waiting or claimed, after this claim
}

// claimToken is a random, unguessable claim identity, so that a late Done of a lost claim cannot match a newer one.
func claimToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
