package middleware

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckStrictJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{}`, true},
		{" \t\r\n{}\n", true},
		{`{"a":1,"b":[1,2,{"c":null}],"d":{"e":true,"f":false},"g":-0.5e+10,"h":"\u00e9\ud83d\ude00\/\"\\\b\f\n\r\t"}`, true},
		{`{"a":{"x":1},"b":{"x":1}}`, true}, // the same name in different objects
		{"{\"a\":\"\xef\xbf\xbf\x7f\xe2\x82\xac\"}", true},
		{`{"a":1,"a":2}`, false},
		{`{"a":1,"\u0061":2}`, false},
		{`{"sub":"x","s\u0075b":"y"}`, false},
		{`{"a":{"b":1,"b":1}}`, false},
		{`{"a":[{"b":1,"b":1}]}`, false},
		{`{"a":"\u0000"}`, false},
		{`{"\u0000":1}`, false},
		{`{"a":"\ud800"}`, false},
		{`{"a":"\udc00"}`, false},
		{`{"a":"\ud800\u0041"}`, false},
		{`{"a":"\ud800x"}`, false},
		{`{"a":"\uD83D\uDE00"}`, true},
		{"{\"a\":\"\xff\"}", false},
		{"{\"a\":\"\xc0\xaf\"}", false},
		{"{\"a\":\"\xed\xa0\x80\"}", false},
		{"{\"a\":\"\xe2\x82\"}", false},
		{"{\"a\":\"\x01\"}", false},
		{"{\"a\":\"\t\"}", false},
		{`{"a":"\x"}`, false},
		{`{"a":"\u12"}`, false},
		{`{"a":"\u12G4"}`, false},
		{`{"a":"`, false},
		{`{"a":01}`, false},
		{`{"a":1.}`, false},
		{`{"a":.5}`, false},
		{`{"a":+1}`, false},
		{`{"a":1e}`, false},
		{`{"a":-}`, false},
		{`{"a":True}`, false},
		{`{"a":nul}`, false},
		{`{"a":1,}`, false},
		{`{,}`, false},
		{`{"a" 1}`, false},
		{`{"a":1 "b":2}`, false},
		{`{a:1}`, false},
		{`[]`, false},
		{`"x"`, false},
		{``, false},
		{`{}{}`, false},
		{`{}x`, false},
		{"\v{}", false},
		{"\xef\xbb\xbf{}", false},
		{`{"a":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}`, true},
		{`{"a":` + strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1) + `}`, false},
		{`{"a":` + strings.Repeat("[", 100000), false},
	} {
		err := checkStrictJSON([]byte(tc.in), nil)
		if (err == nil) != tc.ok {
			t.Errorf("checkStrictJSON(%.60q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
	if err := checkStrictJSON([]byte(`{"sub":1,"sub":2}`), nil); !errors.Is(err, errDuplicateMember) {
		t.Errorf("duplicate error = %v, want errDuplicateMember", err)
	}
	// Objects with many members switch to a map; duplicates are still found, at either end.
	var b strings.Builder
	b.WriteString(`{"k":0`)
	for i := range 500 {
		b.WriteString(`,"m` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":0`)
	}
	many := b.String()
	if err := checkStrictJSON([]byte(many+"}"), nil); err != nil {
		t.Errorf("500 distinct members: %v", err)
	}
	if err := checkStrictJSON([]byte(many+`,"k":1}`), nil); !errors.Is(err, errDuplicateMember) {
		t.Errorf("duplicate after 500 members: %v", err)
	}
}

// refStrict is a reference for checkStrictJSON built on encoding/json: ok when b is one JSON object with no
// duplicate member names (compared decoded), no NUL in any decoded string, nesting within maxJSONDepth. unsure is
// set when encoding/json cannot tell (it replaces invalid UTF-8 and lone surrogates with U+FFFD).
func refStrict(b []byte) (ok, unsure bool) {
	if !json.Valid(b) || !utf8.Valid(b) {
		return false, false
	}
	type frame struct {
		obj     bool
		wantKey bool
		keys    map[string]bool
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var stack []*frame
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return true, unsure
		}
		if err != nil {
			return false, false
		}
		if first && tok != json.Delim('{') {
			return false, false
		}
		first = false
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, isStr := tok.(string); isStr {
			if strings.ContainsRune(s, 0) {
				return false, false
			}
			if strings.ContainsRune(s, utf8.RuneError) {
				unsure = true
			}
			if top != nil && top.obj && top.wantKey {
				if top.keys[s] {
					return false, false
				}
				top.keys[s] = true
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) > maxJSONDepth {
				return false, false
			}
			stack = append(stack, &frame{obj: tok == json.Delim('{'), wantKey: true, keys: map[string]bool{}})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 {
				top = stack[len(stack)-1]
			} else {
				top = nil
			}
		}
		if top != nil && top.obj {
			top.wantKey = true // a value ended
		}
	}
}

// FuzzCheckStrictJSON: the strict scanner never panics, and agrees with a reference built on encoding/json
// wherever that reference can tell (it cannot see invalid UTF-8 or lone surrogates once decoded).
// Run: go test ./middleware -run '^$' -fuzz FuzzCheckStrictJSON -fuzztime 30s
func FuzzCheckStrictJSON(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"s\u0075b":1,"sub":2}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud800"}`,
		`{"a":"\u0000"}`, `{"a":[{"b":{"c":[1,2.5e-3,-0,true,false,null]}}]}`, "{\"a\":\"\xff\"}", `{"a":01}`,
		`[{}]`, ` {"x":{"x":{"x":1}}} `, `{"aud":["authenticated","a:b c"],"exp":1e300}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkStrictJSON(b, nil)
		ok, unsure := refStrict(b)
		if err == nil && !ok {
			t.Fatalf("accepted %q, the reference refuses it", b)
		}
		if err != nil && ok && !unsure {
			t.Fatalf("refused %q (%v), the reference accepts it", b, err)
		}
		if err == nil {
			var m map[string]any
			if uerr := json.Unmarshal(b, &m); uerr != nil {
				t.Fatalf("accepted %q, encoding/json cannot decode it: %v", b, uerr)
			}
		}
	})
}
