package supa_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/qryptchat/suparelay/supa"
)

// TestRefusalSentinels: our RPCs' refusals (a PTxxx SQLSTATE with a slug) match their sentinels with errors.Is;
// other errors with the same text, or another slug, do not.
func TestRefusalSentinels(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("send: %w", &supa.Error{Op: "rpc api_send_message", Status: 400, Code: "PT400", Message: "no_recipients"})
	if !errors.Is(err, supa.ErrNoRecipients) || errors.Is(err, supa.ErrNotParticipant) {
		t.Errorf("PT400 no_recipients: Is(supa.ErrNoRecipients)=%v Is(supa.ErrNotParticipant)=%v", errors.Is(err, supa.ErrNoRecipients), errors.Is(err, supa.ErrNotParticipant))
	}
	if errors.Is(&supa.Error{Status: 400, Code: "22P02", Message: "no_recipients"}, supa.ErrNoRecipients) {
		t.Error("a Postgres error that happens to carry the slug matched")
	}
	if errors.Is(&supa.Error{Op: "x", Err: errors.New("refused")}, supa.ErrNoRecipients) {
		t.Error("a transport error matched")
	}
}
