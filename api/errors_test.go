package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/qryptchat/suparelay/supa"
)

// TestFailTable: the one error table answers supa's sentinels that carry no PostgREST answer by what they mean, a
// refusal of our RPCs by its HTTP status even when it names the same sentinel, and the details body only at 500.
func TestFailTable(t *testing.T) {
	t.Parallel()
	s := New(Config{})
	rpcNoProfile := &supa.Error{Op: "rpc send_message", Status: http.StatusUnauthorized, Code: "PT401", Message: "no_profile"}
	for _, tc := range []struct {
		name   string
		err    error
		f      failures
		status int
		body   string
	}{
		{"no users row", fmt.Errorf("lookup: %w", supa.ErrNoProfile), failures{internal: "x"}, 404, `{"error":"x"}`},
		{"no users row, fixed route", supa.ErrNoProfile, failures{internal: "x", fixed: true}, 500, `{"error":"x"}`},
		{"no users row, named", supa.ErrNoProfile, failures{internal: "x", refusals: map[error]answer{supa.ErrNoProfile: {404, "User not found"}}},
			404, `{"error":"User not found"}`},
		{"duplicate users rows", supa.ErrDuplicateProfile, failures{internal: "x"}, 500, `{"error":"x"}`},
		{"rpc no_profile keeps its status", rpcNoProfile, failures{internal: "x"}, 403, `{"error":"x"}`},
		{"details at 500", errors.New("boom"), failures{internal: "x", fixed: true, details: "d"}, 500, `{"details":"d","error":"x"}`},
		{"no details at 502", &supa.Error{Op: "rpc", Err: errors.New("refused")}, failures{internal: "x", fixed: true, details: "d"},
			502, `{"error":"x"}`},
		{"shed by the gate", &supa.Error{Op: "rpc", Err: supa.ErrOverloaded}, failures{internal: "x", fixed: true},
			503, `{"error":"` + overloadedText + `"}`},
		{"shed, files body", &supa.Error{Op: "rpc", Err: supa.ErrOverloaded}, failures{internal: "x", files: true},
			503, `{"error":"` + overloadedText + `","message":"` + overloadedText + `"}`},
		{"deadlock victim", &supa.Error{Op: "rpc api_send_message", Status: 500, Code: "40P01", Message: "deadlock detected"},
			failures{internal: "x", fixed: true}, 503, `{"error":"` + overloadedText + `"}`},
		{"refusal before details", supa.ErrDeleteReturnedEmpty, failures{internal: "x", fixed: true, details: "d",
			refusals: map[error]answer{supa.ErrDeleteReturnedEmpty: {500, "empty"}}}, 500, `{"error":"empty"}`},
	} {
		w := httptest.NewRecorder()
		s.fail(w, httptest.NewRequest(http.MethodGet, "/api/x", nil), tc.err, tc.f)
		var got map[string]string
		_ = json.Unmarshal(w.Body.Bytes(), &got)
		want := map[string]string{}
		_ = json.Unmarshal([]byte(tc.body), &want)
		if w.Code != tc.status || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, w.Code, w.Body, tc.status, tc.body)
		}
		if ra := w.Header().Get("Retry-After"); (tc.status == 503) != (ra == "1") {
			t.Errorf("%s: Retry-After %q", tc.name, ra)
		}
	}
}
