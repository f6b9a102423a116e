package supa_test

import (
	"context"
	"errors"
	"testing"

	"github.com/qryptchat/suparelay/supa"
)

// TestOutcomeUnknown: a write may have committed when no answer came or the gateway answered 5xx; a refusal, a bad
// request or a shed call are known outcomes.
func TestOutcomeUnknown(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no answer", &supa.Error{Op: "rpc", Err: errors.New("connection reset")}, true},
		{"deadline", context.DeadlineExceeded, true},
		{"gateway 502", &supa.Error{Op: "rpc", Status: 502}, true},
		{"500 from PostgREST", &supa.Error{Op: "rpc", Status: 500, Code: "XX000"}, true},
		{"refused by RLS", &supa.Error{Op: "rpc", Status: 403, Code: "42501"}, false},
		{"bad input", &supa.Error{Op: "rpc", Status: 400, Code: "22P02"}, false},
		{"shed by the gate", &supa.Error{Op: "rpc", Err: supa.ErrOverloaded}, false},
	} {
		if got := supa.OutcomeUnknown(tc.err); got != tc.want {
			t.Errorf("%s: OutcomeUnknown = %v, want %v", tc.name, got, tc.want)
		}
	}
}
