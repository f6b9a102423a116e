package relay

import (
	"context"
	"errors"
	"time"
)

// Broker is the bus that makes several Hub processes behave like one. It owns two things:
//
//  1. The event log: one totally ordered, append-only sequence of opaque records. Publish appends a record and fans
//     it out to every subscribed node; the append and the fan-out are atomic together (a record that is in the log
//     is also published, in log order; Lua on Redis, one mutex in memory). Each record gets a Position: an Offset
//     that grows by exactly one per record, and an Epoch that names the log. When the epoch changes (the log was
//     lost, e.g. a Redis flush or a memory broker restart), offsets start again and positions from the old epoch
//     cannot be resumed.
//  2. Room membership: (room, user) pairs with the log offset at which the user joined, kept per user with a TTL
//     (the grace period) that the Hubs holding streams for that user keep refreshing with Touch. Membership changes
//     are announced to every node through HandleMembership.
//  3. Stream leases: the cluster-wide count of each user's open streams, one lease per stream with a TTL that
//     the owning node renews. A node that dies stops renewing, and its leases lapse; ExpireStreams then reports
//     users whose last lease lapsed, once, to one caller. This is what makes the per-user stream cap and
//     presence (online while the user has a stream on any node) cluster-wide.
//
// Delivery to the BrokerHandler is at-most-once and in log order, from one goroutine at a time. A broker that
// notices a gap (a lost pub/sub message, a reconnect) fills it from its history before going on; when history
// cannot fill it, it says so through HandleGap before delivering anything newer.
//
// Every method takes a ctx that bounds its I/O. Errors from an unreachable backend are returned, never retried
// forever: the Hub degrades to local delivery and the broker reconnects in the background (Ready reports it).
// A BrokerHandler must not call back into the broker from its callbacks (the memory broker calls them under its
// lock).
type Broker interface {
	// Subscribe starts delivering to h. It returns once the first subscription attempt is done (an error then
	// means the broker keeps retrying in the background until ctx ends or Close). Call it once.
	Subscribe(ctx context.Context, h BrokerHandler) error
	// Publish appends data to the log and fans it out; it returns the record's position.
	Publish(ctx context.Context, data []byte) (Position, error)
	// History returns up to limit records with offsets after after.Offset, in order, and the log's current head.
	// It returns ErrHistoryUnavailable when it cannot serve a contiguous range starting right after `after`: the
	// epoch differs, the records were trimmed (size or age), or the broker keeps no history.
	History(ctx context.Context, after Position, limit int) ([]Message, Position, error)
	// Head returns the position of the newest record (offset 0 when the log is empty). An empty log has an epoch
	// too (created by Head if need be), so a position taken on an empty log can be resumed once records follow.
	Head(ctx context.Context) (Position, error)

	// Join adds user to room, keeps the user's membership alive for at least ttl, and returns the offset the
	// membership counts from (an existing membership keeps its original offset). When the user already has
	// maxRooms rooms, the oldest-joined one is dropped to make room.
	Join(ctx context.Context, room, user string, maxRooms int, ttl time.Duration) (uint64, error)
	Leave(ctx context.Context, room, user string) error
	LeaveAll(ctx context.Context, user string) error
	CloseRoom(ctx context.Context, room string) error
	// Rooms returns the user's rooms (room → join offset) and extends their lifetime to at least ttl (ttl ≤ 0:
	// leaves it alone).
	Rooms(ctx context.Context, user string, ttl time.Duration) (map[string]uint64, error)
	// Touch extends the membership lifetime of each user (that has any) to ttl from now.
	Touch(ctx context.Context, users []string, ttl time.Duration) error

	// AcquireStream adds lease (unique per stream) to user's open streams, unless user already holds max live
	// leases (max ≤ 0: no cap). See StreamGrant.
	AcquireStream(ctx context.Context, user, lease string, max int, ttl time.Duration) (StreamGrant, error)
	// ReleaseStream removes lease and reports whether that left user with no live lease (the user's last stream
	// in the cluster closed; lapsed leases of the user go too). roomTTL > 0 also does Touch(user, roomTTL), in
	// the same round trip.
	ReleaseStream(ctx context.Context, user, lease string, roomTTL time.Duration) (last bool, err error)
	// RenewStreams sets every given lease (user → leases) to expire ttl from now, adding those that are missing
	// (streams opened while the backend was down, or whose leases lapsed). It returns the users that held no
	// lease at all before (they are online again).
	RenewStreams(ctx context.Context, leases map[string][]string, ttl time.Duration) (revived []string, err error)
	// ExpireStreams drops lapsed leases and returns the users (up to limit) left with none: each such user is
	// returned once, to one caller, unless a lease of theirs is acquired or renewed again.
	ExpireStreams(ctx context.Context, limit int) (gone []string, err error)

	// Reset starts a new epoch: the log empties, positions of the old epoch can no longer be resumed, and every
	// subscribed node (this one too) is told through HandleGap. A Hub calls it after events it could not publish,
	// so that no client resumes across them as if nothing were missing.
	Reset(ctx context.Context) (Position, error)
	// Ready returns nil when the backend is reachable and the subscription is live.
	Ready(ctx context.Context) error
	Close() error
}

// BrokerHandler receives what a Broker delivers; the Hub implements it.
type BrokerHandler interface {
	HandleMessage(m Message)
	HandleMembership(c MembershipChange)
	// HandleGap says that records were lost between what was delivered and what comes next (a Reset, a log that
	// vanished or was trimmed while the subscription was down): no position before next may be resumed. next is
	// the position the next delivered record follows.
	HandleGap(next Position)
}

// StreamGrant is AcquireStream's answer.
type StreamGrant struct {
	OK bool // the lease was added; false: the user is at the cap (nothing changed)
	// First: the user held no lease before, live or lapsed, so the user comes online. A user whose only leases
	// had lapsed unnoticed was never reported gone, so a new stream is no transition.
	First bool
	Live  int // the user's live leases after the call
}

// Position locates a record in the log.
type Position struct {
	Offset uint64
	Epoch  string
}

// Message is one record of the log.
type Message struct {
	Pos  Position
	Time time.Time // when it was published (publisher's clock, millisecond precision)
	Data []byte
}

// MembershipOp names a membership change.
type MembershipOp string

const (
	OpJoin      MembershipOp = "join"
	OpLeave     MembershipOp = "leave"
	OpLeaveAll  MembershipOp = "leaveall"
	OpCloseRoom MembershipOp = "close"
)

// MembershipChange is announced to every node after the broker has applied it.
type MembershipChange struct {
	Op     MembershipOp `json:"op"`
	Room   string       `json:"room,omitempty"`
	User   string       `json:"user,omitempty"`
	Offset uint64       `json:"off,omitempty"` // join offset (OpJoin)
}

var (
	// ErrHistoryUnavailable means the requested position cannot be resumed: continue from the head instead.
	ErrHistoryUnavailable = errors.New("relay: history unavailable for that position")
	// ErrBrokerUnavailable means the backend is unreachable right now.
	ErrBrokerUnavailable = errors.New("relay: broker unavailable")
	// ErrBrokerClosed is returned after Close.
	ErrBrokerClosed = errors.New("relay: broker closed")
)
