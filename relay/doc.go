// Package relay is suparelay's real-time layer: the SSE stream of GET /api/events (sse.md), conversation rooms,
// and the bus that lets several server processes act as one.
//
// # Design: one ordered log, filtered per node
//
// Every published event becomes one record in a single, totally ordered log owned by the Broker (a ring under a
// mutex in memory; a capped Redis list appended by a Lua script that also PUBLISHes the record on one channel).
// A record carries its audience: a room (with an optional excluded user and participant list) or one user. Each
// node receives every record, keeps the recent ones in its own ring, and fans each one out to the streams of its
// local users the record is addressed to, using a local index room → users that have streams here.
//
// The SSE id of a record is its log position "<epoch>-<offset>". Resume is then one number per stream: on
// reconnect with Last-Event-ID, the node walks its ring (or the broker's history) from that offset and writes the
// records addressed to the user, judged with the same rule as live fan-out (addressedTo) against the user's
// current rooms and their join offsets (a room joined during the gap does not replay events from before the join).
//
// Why not per-user streams (one log per user, as the hint suggested)? A room event would cost one append and one
// publish per member: 10,000 Redis writes and 10,000 pub/sub messages for one message in a 10,000-member room.
// Why not per-room channels? Resume would need a position per room the user is in. The single log gives the cheap
// big-room fan-out of per-room channels (one append, one publish, local filtering) and the single-offset resume
// of per-user streams. Its costs: every node sees every record (fine for the node counts a chat server runs;
// Redis pub/sub sends the same bytes to each node once), history is shared by all users (bounded by the count,
// bytes and age of its records, not per user), and replay filters records it does not send.
//
// # Resume that cannot lie
//
// A Last-Event-ID is resumed only when the log provably holds everything after it: same epoch, not past the head (a
// client ahead of this node is checked against the broker's head: the node may just lag), and history (the ring,
// else the broker) still holding the next record. Anything else (past the head, another epoch, an empty log's "-0",
// older than history, not an id of ours) is "cannot resume", and the client is told the ways sse.md allows:
// CONNECTED carries the current id instead of the client's, and reload hints follow: one for each joined room (up to
// 20, latest joins first) and one with an empty conversation_id (NEW_MESSAGE with shouldReloadMessages, no id line;
// the frontend reloads the open conversation, and the conversation list). Then it continues live. CONNECTED always
// has its own id: on a resume it is the client's position with a ".<n>" suffix ("e-7.1", then "e-7.2"), never an id
// the client already holds. An empty log has an epoch from the first Head on, so a stream that starts on it holds a
// resumable "<epoch>-0". A Redis log whose head went back below what a node has delivered (a restore from a
// snapshot, a lagging replica) starts a new epoch at that node's next publish or reconnect instead of reusing
// offsets. relay_resumes_total counts each outcome.
//
// # Ordering and no loss between replay and live
//
// ServeStream registers the stream first (it starts receiving live records into its bounded queue), notes the
// node's position p0, judges the Last-Event-ID, writes CONNECTED (its id names the start point), loads the user's rooms from the broker if this is
// the user's first stream on the node, then takes the node's position p1 and replays (start, p1] from the ring.
// Live records at or below p1 found on the queue afterwards are skipped, so nothing is lost and nothing is sent
// twice (mercure's "register, snapshot, replay, ready").
//
// # Rooms
//
// Membership is (room, internal user id) → join offset, stored by the broker per user with a TTL of RoomGrace.
// Each node with streams for a user refreshes that TTL every RoomGrace/4 and once more when the user's last stream
// on the node closes, so memberships live while the user has a stream anywhere and for RoomGrace after the last
// one closes; a stream opened within the grace inherits them; Join without a stream starts the grace clock. Changes
// are announced to every node (HandleMembership) so joins made on node A reach streams on node B. Joining beyond
// MaxRoomsPerUser drops the oldest-joined room. Empty rooms are dropped from every index.
//
// # Slow consumers, failures, shutdown
//
// Fan-out never blocks: a stream whose queue (QueueSize) is full is closed and its client reconnects and resumes.
// Every write has its own deadline (http.ResponseController). When the broker is down, publishes and membership
// changes apply to this node only (no id beyond the last known, no history), errors are logged and counted,
// Ready reports it, and the Redis broker reconnects with backoff and recovers missed records from its list.
// Shutdown ends every stream with a jittered retry hint so reconnects spread over other nodes.
//
// # Streams per user and presence, cluster-wide
//
// Each stream takes a lease at the broker when it registers (one round trip: AcquireStream) and gives it back
// when it ends (ReleaseStream, which also starts the memberships' grace clock, so closing costs no extra round
// trip). The broker counts a user's live leases on every node, so MaxStreamsPerUser is a cluster-wide cap, and it
// reports the user's first lease and last release exactly once: USER_ONLINE and USER_OFFLINE (HubConfig.Presence)
// are announced by whichever node sees the transition, once. Leases carry a TTL (StreamLeaseTTL, 45 s) that each
// node renews every third of it for its open streams; a node that dies stops renewing, and a sweep every node
// runs (every ninth of the TTL) finds the users whose last lease lapsed, frees their cap and announces them
// offline, once (the broker hands each such user to one sweeper). Renewals also put back leases the broker lost
// (streams opened while it was down), so the count heals by itself. While the broker is unreachable a node
// decides alone: the cap counts its own streams (never unlimited) and presence follows its first and last
// stream. MaxStreamsPerNode is per node by nature.
//
// # Memory per stream
//
// Through net/http a stream costs about 28 KiB (the connection's bufio buffers, the request, a deep handler
// stack and a background-read goroutine). HubConfig.DetachHTTP1 hijacks HTTP/1.1 streams and serves them from a
// lean goroutine with its own chunked framing: about 12 KiB. See BENCHMARKS.md.
//
// # Use
//
//	hub := relay.NewHub(broker, relay.HubConfig{DetachHTTP1: true}, log, prometheus.DefaultRegisterer)
//	hub.Start(ctx)                                     // before serving; keeps going if the broker is down
//	hub.ServeStream(w, r, internalUserID, tokenExpiry) // GET /api/events, after authentication
//	hub.Join(ctx, conversationID, internalUserID)      // messages/load, conversations/join|create
//	hub.PublishToRoom(ctx, conversationID, relay.NewMessageEvent(row),
//		relay.PublishOptions{Participants: activeParticipantIDs})
//	hub.PublishToRoom(ctx, conversationID, relay.TypingStartEvent(id, username, display, conversationID),
//		relay.PublishOptions{ExcludeUser: id, Participants: activeParticipantIDs, MembersOnly: true})
//	hub.Shutdown(ctx)                                  // before http.Server.Shutdown; the Hub is then done
//	broker.Close()
package relay
