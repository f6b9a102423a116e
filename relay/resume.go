package relay

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"
)

// Outcomes of a stream's Last-Event-ID (the relay_resumes_total label). Everything but resumeOK and resumeNone is
// "cannot resume": the client is told (CONNECTED carries the current id, not the client's, and reload hints
// follow), never left with a silent gap.
const (
	resumeNone         = ""              // no Last-Event-ID: a fresh stream, not counted
	resumeOK           = "resumed"       // replayed from the client's position
	resumeMalformed    = "malformed"     // not an id this relay writes
	resumeEmptyLog     = "empty_log"     // "-N": no epoch on the client's side or on this node's
	resumeUnknownEpoch = "unknown_epoch" // another log (flushed Redis, restarted memory broker)
	resumePastHead     = "past_head"     // beyond the log's head (Redis restored from a snapshot, lagging replica)
	resumeTrimmed      = "trimmed"       // older than the history kept (size, bytes or age)
	resumeEpochChanged = "epoch_changed" // the log changed epoch while the stream was being set up
)

// maxReloadHints bounds the room reload hints of one unresumable stream: each makes the browser reload a
// conversation (the open one) or the conversation list (any other), so a user with hundreds of rooms must not
// cause hundreds of requests. The most recently joined rooms come first: the open conversation is among them.
const maxReloadHints = 20

// resumePlan is run's decision about the client's Last-Event-ID, taken before CONNECTED is written.
type resumePlan struct {
	from    Position // the user's records after this position are replayed (the client's, or p0)
	outcome string
	connID  string // CONNECTED's id
}

// planResume judges the Last-Event-ID raw against p0, the node's position when the stream registered. Only a
// client ahead of this node costs a broker call (is the node lagging, or is the client past the head?).
func (h *Hub) planResume(ctx context.Context, p0 Position, raw string) resumePlan {
	if raw == "" {
		return resumePlan{from: p0, outcome: resumeNone, connID: formatID(p0)}
	}
	lei, gen, ok := parseEventID(raw)
	next := max(gen+1, gen) // saturating: an id is never handed back, even after 2^32 resumes
	cannot := func(why string) resumePlan {
		var g uint32
		if ok && lei == p0 { // "the current id" is the client's own position: still a fresh id
			g = next
		}
		return resumePlan{from: p0, outcome: why, connID: formatConnectedID(p0, g)}
	}
	switch {
	case !ok:
		return cannot(resumeMalformed)
	case lei.Epoch == "" || p0.Epoch == "":
		return cannot(resumeEmptyLog)
	case lei.Epoch != p0.Epoch:
		return cannot(resumeUnknownEpoch)
	case lei.Offset > p0.Offset:
		if !h.reached(ctx, lei) {
			return cannot(resumePastHead)
		}
	case !h.covered(ctx, lei):
		return cannot(resumeTrimmed)
	}
	return resumePlan{from: lei, outcome: resumeOK, connID: formatConnectedID(lei, next)}
}

// reached reports whether the log holds position p: a client can be ahead of this node only because the node
// lags the broker by a few records; otherwise p is past the head. When the broker cannot say, p is not trusted.
func (h *Hub) reached(ctx context.Context, p Position) bool {
	h.mu.Lock()
	pos := h.pos
	h.mu.Unlock()
	if pos.Epoch == p.Epoch && pos.Offset >= p.Offset {
		return true
	}
	var head Position
	var err error
	done := make(chan struct{})
	go func() { // on a helper goroutine, for the same stack reason as loadRooms in run
		defer close(done)
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		head, err = h.b.Head(hctx)
	}()
	<-done
	if err != nil {
		h.brokerError("head", err)
		return false
	}
	return head.Epoch == p.Epoch && head.Offset >= p.Offset
}

// covered reports whether history still holds every record after p (the node's ring, else the broker's): a
// client whose next record is gone cannot resume. The broker is asked only when the ring cannot answer (a node
// started after p, or p older than the ring), so CONNECTED waits on the broker only for such resumes.
func (h *Hub) covered(ctx context.Context, p Position) bool {
	h.mu.Lock()
	ok := h.ring.covers(p, time.Now())
	h.mu.Unlock()
	if ok {
		return true
	}
	var err error
	done := make(chan struct{})
	go func() { // a helper goroutine, as in reached
		defer close(done)
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, _, err = h.b.History(hctx, p, 1)
	}()
	<-done
	if err != nil && !errors.Is(err, ErrHistoryUnavailable) {
		h.brokerError("history", err)
	}
	return err == nil
}

// reloadHintEvent is NEW_MESSAGE with shouldReloadMessages and no real message, sent for conversationID when a
// stream cannot resume: the frontend reloads that conversation if it is open, the conversation list otherwise
// (sse.md §3), which is how the contract lets a client be told it missed events.
func reloadHintEvent(conversationID string) Event {
	type hint struct {
		ID             *string `json:"id"`
		ConversationID string  `json:"conversation_id"`
	}
	return NewMessageEvent(mustJSON(hint{nil, conversationID}))
}

// appendReloadHints appends one reload hint per room (at most maxReloadHints, latest joins first), then one with
// an empty conversation_id, which matches no open conversation and so makes the frontend reload its conversation
// list (a CONVERSATION_CREATED, or a NEW_MESSAGE for a conversation not joined here, may be among what was
// missed; and a user with no rooms is still told). They carry no id line: they are not log records, and the
// client's position stays CONNECTED's.
func appendReloadHints(b []byte, rooms map[string]uint64, now time.Time) []byte {
	type joined struct {
		room string
		off  uint64
	}
	list := make([]joined, 0, len(rooms)+1)
	for r, off := range rooms {
		list = append(list, joined{r, off})
	}
	slices.SortFunc(list, func(a, b joined) int {
		if c := cmp.Compare(b.off, a.off); c != 0 {
			return c
		}
		return cmp.Compare(a.room, b.room)
	})
	list = append(list[:min(len(list), maxReloadHints)], joined{room: ""})
	head := frameHead(TypeNewMessage)
	for _, j := range list {
		b = append(b, head...)
		b = appendTimestamp(b, now)
		b = append(b, frameTail(reloadHintEvent(j.room).Data, "", 0)...)
	}
	return b
}
