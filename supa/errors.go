package supa

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
)

// Error is a failed Supabase call with everything the server needs to answer correctly: the HTTP status PostgREST
// (or Auth, or Storage) returned, the Postgres or PostgREST error code, and the texts. Transport failures have
// Status 0 and Err set.
type Error struct {
	Op      string // what was attempted, e.g. "select messages"
	Status  int    // HTTP status; 0 when no response arrived
	Code    string // PostgREST/Postgres code (PGRST116, 42501, 23505, …) or Auth error_code
	Message string
	Details string
	Hint    string
	Err     error // transport error (timeout, refused) when Status is 0
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("supa: %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("supa: %s: HTTP %d %s: %s", e.Op, e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Refusals raised by our own RPCs (supabase/migrations/*_api_rpcs.sql raise a PTxxx SQLSTATE with a fixed slug as
// the message). Handlers test them with errors.Is; the HTTP status PostgREST derived from the SQLSTATE stays in
// Error.Status.
var (
	ErrNoProfile              = errors.New("supa: the caller has no users row")
	ErrNotParticipant         = errors.New("supa: the caller is not an active participant")
	ErrNoRecipients           = errors.New("supa: no recipient is an active participant")
	ErrReplyNotInConversation = errors.New("supa: the replied-to message is not in this conversation")
	ErrNoteToSelf             = errors.New("supa: not allowed on a note-to-self conversation")
	ErrConversationNotFound   = errors.New("supa: no such conversation")
	ErrInvalidUserIDs         = errors.New("supa: some user ids do not exist")
	ErrNotGroupMember         = errors.New("supa: the caller is not an active member of the group")
	ErrSendDeadlinePassed     = errors.New("supa: the send's deadline passed before it could commit")
)

// rpcRefusals maps the slugs of our RPCs to their sentinels.
var rpcRefusals = map[string]error{
	"no_profile": ErrNoProfile, "not_participant": ErrNotParticipant, "no_recipients": ErrNoRecipients,
	"reply_not_in_conversation": ErrReplyNotInConversation, "note_to_self": ErrNoteToSelf,
	"conversation_not_found": ErrConversationNotFound, "invalid_user_ids": ErrInvalidUserIDs,
	"not_group_member": ErrNotGroupMember, "send_deadline_passed": ErrSendDeadlinePassed,
}

// Is makes errors.Is(err, ErrNoRecipients) and its siblings work on the refusals of our RPCs: a PTxxx code from
// PostgREST with the sentinel's slug as the message.
func (e *Error) Is(target error) bool {
	return e.Status != 0 && len(e.Code) == 5 && e.Code[:2] == "PT" && rpcRefusals[e.Message] == target
}

// Kind classifies an error for mapping to an HTTP answer.
type Kind int

const (
	KindOther       Kind = iota
	KindNotFound         // a single object was asked for and there is none (PGRST116), or 404
	KindForbidden        // RLS or a privilege refused it (42501, 401/403 from PostgREST)
	KindConflict         // unique or foreign-key conflict (23505, 409)
	KindBadInput         // the values were refused (22P02, 23502, 23514, 400)
	KindUnavailable      // no answer: connection refused, reset, 502/503
	KindTimeout          // no answer in time: deadline, 504
	KindOverloaded       // not sent: this node's PostgREST calls were all in use (ErrOverloaded)
	KindRolledBack       // the database rolled the transaction back for a lock conflict (40P01, 40001): retry
)

// KindOf says what kind of failure err is; nil and non-supa errors are KindOther (context deadlines KindTimeout).
func KindOf(err error) Kind {
	if err == nil {
		return KindOther
	}
	var e *Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.DeadlineExceeded) {
			return KindTimeout
		}
		return KindOther
	}
	if errors.Is(e.Err, ErrOverloaded) {
		return KindOverloaded
	}
	if txRolledBack(err) {
		return KindRolledBack
	}
	switch e.Code {
	case "PGRST116":
		return KindNotFound
	case "42501":
		return KindForbidden
	case "23505", "23503":
		return KindConflict
	case "22P02", "23502", "23514", "22001", "22023", "PGRST102", "PGRST100":
		return KindBadInput
	}
	switch {
	case e.Status == 0:
		var ne net.Error
		if errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &ne) && ne.Timeout()) {
			return KindTimeout
		}
		return KindUnavailable
	case e.Status == http.StatusNotFound || e.Status == http.StatusNotAcceptable:
		return KindNotFound
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return KindForbidden
	case e.Status == http.StatusConflict:
		return KindConflict
	case e.Status == http.StatusBadRequest:
		return KindBadInput
	case e.Status == http.StatusGatewayTimeout:
		return KindTimeout
	case e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable:
		return KindUnavailable
	}
	return KindOther
}

// IsNotFound reports whether err means "no such row".
func IsNotFound(err error) bool { return KindOf(err) == KindNotFound }

// txRolledBack reports whether err is PostgreSQL saying it rolled the transaction back for a lock conflict:
// deadlock_detected (40P01, this transaction was the deadlock victim) or serialization_failure (40001). Nothing of
// such a transaction was stored and running it again may succeed. PostgREST 12 answers both with HTTP 500 and the
// SQLSTATE as the JSON code (class 40 → 500 in its error table); it retries a 40001 itself (hasql-transaction does,
// within the request), so in practice only 40P01 reaches us. The rest of class 40 is left out on purpose: 40003
// (statement_completion_unknown) is an unknown outcome.
func txRolledBack(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status != 0 && (e.Code == "40P01" || e.Code == "40001")
}

// OutcomeUnknown reports whether a failed write may have committed all the same: no answer arrived (timeout,
// broken or refused connection) or the gateway answered for PostgREST (5xx). A refusal by the database, a bad
// request, or this node's gate shedding the call (never sent) are known outcomes, and so is a transaction the
// database rolled back for a deadlock or a serialization failure: PostgREST answers those with a 500, but the
// SQLSTATE in the answer says the transaction did not commit (txRolledBack).
func OutcomeUnknown(err error) bool {
	if txRolledBack(err) {
		return false
	}
	switch KindOf(err) {
	case KindTimeout, KindUnavailable:
		return true
	case KindOther:
		var e *Error
		return !errors.As(err, &e) || e.Status == 0 || e.Status >= 500
	}
	return false
}
