package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/qryptchat/suparelay/supa"
)

// A send whose answer never arrived — PostgREST timed out, the connection broke after the request went out, the
// gateway answered 502/504 — may have committed. Telling the sender "failed" then is wrong twice over: the
// recipients never get NEW_MESSAGE for a message that is stored, and the sender's retry stores it again. So the
// server picks the message id and a commit deadline (the database refuses to commit after it), and on an unheard
// outcome asks the database what became of that id (api_resolve_send, which waits until the deadline has passed
// and no transaction still holds the send): stored → the send succeeded; not stored → it never will be, and the
// answer is a 503 the browser may retry.
//
// The deadline is this server's clock read by the database's: the two must agree to well within the send timeout
// (NTP does; a database clock that runs ahead by more than the timeout makes every send a 503, never a lost
// message).

// Errors of storeMessage beyond supa's refusals.
var (
	// errSendNotStored: the send did not commit and never will (its deadline passed, or the resolution said so).
	errSendNotStored = errors.New("api: the message was not stored")
	// errSendUnresolved: neither the send nor its resolution got an answer in time; the outcome is unknown.
	errSendUnresolved = errors.New("api: the outcome of the send is unknown")
)

// Bounds of the resolution of an unheard send.
const (
	sendAnswerGrace  = 750 * time.Millisecond // how long past the commit deadline the send's answer is awaited
	resolveAttempts  = 3
	resolveBudget    = 6 * time.Second // all attempts together, counted from the commit deadline
	resolveRetryWait = 200 * time.Millisecond
	// lateResolveBudget: how long an unresolved send is still resolved in the background after its answer.
	lateResolveBudget = 2 * time.Minute
)

// sendFailures are the answers of the two outcomes that only storeMessage produces, for the send routes' failures.
var sendFailures = map[error]answer{
	errSendNotStored:  {http.StatusServiceUnavailable, "Message was not sent, please try again"},
	errSendUnresolved: {http.StatusGatewayTimeout, "Message delivery could not be confirmed yet"},
}

// storeMessage sends m under token and settles an unheard outcome before returning: it returns the stored message,
// a refusal of the database (supa.ErrNotParticipant, …), ErrOverloaded (nothing was sent), errSendNotStored or —
// only when the database could not be asked within the resolution budget — errSendUnresolved. In that last case
// the resolution goes on in the background (lateResolveBudget) and announce is called if the message turns out
// stored, so that the recipients (and the sender's other tabs) still get it; the caller announces every other
// stored message itself.
//
// The send does not follow the request's cancellation: a browser that leaves mid-send must not leave a stored
// message unannounced, so the call runs to its own deadline (the route's send timeout) and is announced as usual.
func (s *Server) storeMessage(ctx context.Context, token string, m supa.NewMessage,
	announce func(context.Context, supa.SentMessage)) (supa.SentMessage, error) {
	id, err := newUUID()
	if err != nil {
		return supa.SentMessage{}, err
	}
	m.ID = id
	m.NotAfter = s.now().Add(s.timeouts.Send)
	ctx = context.WithoutCancel(ctx)
	rest := s.supa.As(token)
	callCtx, cancel := context.WithDeadline(ctx, m.NotAfter.Add(sendAnswerGrace))
	sent, err := rest.SendMessage(callCtx, m)
	cancel()
	switch {
	case err == nil:
		return sent, nil
	case errors.Is(err, supa.ErrSendDeadlinePassed):
		return supa.SentMessage{}, errSendNotStored
	case !supa.OutcomeUnknown(err):
		return supa.SentMessage{}, err
	}
	s.log.WarnContext(ctx, "send: outcome unknown, resolving", "message", id, "err", err)
	resolveCtx, cancel := context.WithDeadline(ctx, m.NotAfter.Add(resolveBudget))
	defer cancel()
	for attempt := 1; ; attempt++ {
		got, found, rerr := rest.ResolveSend(resolveCtx, id, m.NotAfter)
		switch {
		case rerr == nil && found:
			s.log.InfoContext(ctx, "send: resolved as stored", "message", id, "attempt", attempt)
			return got, nil
		case rerr == nil:
			s.log.InfoContext(ctx, "send: resolved as not stored", "message", id, "attempt", attempt)
			return supa.SentMessage{}, errSendNotStored
		}
		if attempt >= resolveAttempts || resolveCtx.Err() != nil {
			s.log.ErrorContext(ctx, "send: outcome still unknown, resolving in the background", "message", id, "err", rerr)
			s.resolveLate(rest, id, m.NotAfter, announce)
			return supa.SentMessage{}, errSendUnresolved
		}
		select {
		case <-resolveCtx.Done():
		case <-time.After(resolveRetryWait * time.Duration(attempt)):
		}
	}
}

// resolveLate keeps asking what became of an unresolved send, in the background, for lateResolveBudget; a stored
// message is then announced.
func (s *Server) resolveLate(rest supa.Rest, id string, notAfter time.Time, announce func(context.Context, supa.SentMessage)) {
	s.goBackground("late send resolution", func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, lateResolveBudget)
		defer cancel()
		for wait := time.Second; ; wait = min(2*wait, 10*time.Second) {
			select {
			case <-ctx.Done():
				s.log.Error("send: outcome never resolved", "message", id)
				return
			case <-time.After(wait):
			}
			sent, found, err := rest.ResolveSend(ctx, id, notAfter)
			switch {
			case err != nil:
				continue
			case found:
				s.log.Info("send: resolved late as stored; announcing it", "message", id)
				announce(ctx, sent)
			default:
				s.log.Info("send: resolved late as not stored", "message", id)
			}
			return
		}
	})
}

// newUUID returns a random (version 4) UUID.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}

// withSendFailures adds the answers of storeMessage's own outcomes to a send route's refusals.
func withSendFailures(refusals map[error]answer) map[error]answer {
	out := make(map[error]answer, len(refusals)+len(sendFailures))
	for k, v := range refusals {
		out[k] = v
	}
	for k, v := range sendFailures {
		out[k] = v
	}
	return out
}

// failSend answers a failed send: as fail, with Retry-After on the 503 of a send that was not stored (the browser
// may send again: nothing of it is in the database).
func (s *Server) failSend(w http.ResponseWriter, r *http.Request, err error, f failures) {
	if errors.Is(err, errSendNotStored) {
		w.Header().Set("Retry-After", "1")
	}
	s.fail(w, r, err, f)
}
