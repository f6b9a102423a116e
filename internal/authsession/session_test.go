package authsession

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"access_token":"a","refresh_token":"r","expires_at":1700000000,"expires_in":3600}`, true},
		{`{"access_token":"a","expires_at":1700000000.5}`, true},
		{` {"access_token":"a"} `, true},
		{`{"access_token":""}`, false},
		{`{"access_token":"a","expires_at":"soon"}`, false},
		{`{"access_token":"a","refresh_token":7}`, false},
		{`{"access_token":"a","expires_at":1e300}`, false},
		{`null`, false},
		{`[]`, false},
		{`"str"`, false},
		{``, false},
	} {
		_, err := Parse([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%s) err = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
	s, err := Parse([]byte(`{"access_token":"a","expires_in":3600,"user":{"id":"u"}}`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	s2, err := s.WithExpiresAt(now)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(s2.Raw, &m); err != nil {
		t.Fatal(err)
	}
	if s2.ExpiresAt != 1_700_003_600 || string(m["expires_at"]) != "1700003600" || string(m["user"]) != `{"id":"u"}` {
		t.Errorf("withExpiresAt = %+v raw %s", s2, s2.Raw)
	}
}

func TestUserID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{`{"access_token":"a","user":{"id":"u1"}}`: "u1", `{"access_token":"a"}`: "",
		`{"access_token":"a","user":null}`: "", `{"access_token":"a","user":{"id":7}}`: ""} {
		s, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.UserID(); got != want {
			t.Errorf("UserID(%s) = %q, want %q", in, got, want)
		}
	}
}
