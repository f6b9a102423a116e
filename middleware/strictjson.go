package middleware

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of a token's header and payload. Supabase Auth's deepest claim (amr) is two levels
// deep; the bound keeps the recursive scanner's stack small whatever an attacker sends.
const maxJSONDepth = 32

// errDuplicateMember is wrapped by checkStrictJSON for a member name that appears twice in one object.
var errDuplicateMember = errors.New("duplicate member name")

// checkStrictJSON reports whether b is one JSON object (RFC 8259) that every JSON parser reads the same way, so that
// what we verify is what PostgREST (Haskell's aeson, which keeps the FIRST of duplicate members, where Go's
// encoding/json keeps the last) and the database see. It refuses what encoding/json tolerates and aeson does not,
// and what makes readers disagree:
//   - a member name twice in one object, at any depth, names compared after unescaping ("s\u0075b" is "sub");
//   - invalid UTF-8 (encoding/json silently substitutes U+FFFD) and unpaired UTF-16 surrogate escapes;
//   - the escape \u0000, which PostgreSQL's jsonb cannot hold (auth.jwt() would fail on such claims);
//   - a top-level value that is not an object, nesting deeper than maxJSONDepth, anything after the object but
//     whitespace.
//
// top, when not nil, is called for each member of the top-level object with its (unescaped) name, valid only during
// the call, and the first byte of its value. It never panics, and allocates only for objects of many members.
func checkStrictJSON(b []byte, top func(name []byte, first byte) error) error {
	var names [256]byte
	var spans [32]span
	s := jsonScanner{b: b, top: top, names: names[:0], spans: spans[:0]}
	s.skipSpace()
	if s.peek() != '{' {
		return errors.New("JSON: not an object")
	}
	if err := s.value(0); err != nil {
		return err
	}
	s.skipSpace()
	if s.i != len(s.b) {
		return fmt.Errorf("JSON: data after the object at offset %d", s.i)
	}
	return nil
}

// manyMembers: an object with more members than this has its names checked through a map, so that a crafted
// payload cannot make duplicate detection quadratic; smaller ones (all of Supabase's) are searched linearly.
const manyMembers = 32

type jsonScanner struct {
	b   []byte
	i   int
	top func(name []byte, first byte) error
	// names holds the unescaped member names of the objects being scanned, innermost last; spans index it. Both
	// are stacks: an object truncates them to where they were when it ends.
	names []byte
	spans []span
}

type span struct{ off, end int }

func (s *jsonScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) fail(what string) error { return fmt.Errorf("JSON: %s at offset %d", what, s.i) }

func (s *jsonScanner) value(depth int) error {
	if depth > maxJSONDepth {
		return s.fail("nesting too deep")
	}
	switch c := s.peek(); {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		return s.str(false)
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
				s.i += len(lit)
				return nil
			}
		}
		return s.fail("unexpected character")
	}
}

// object scans {...}, refusing a member name seen before in the same object.
func (s *jsonScanner) object(depth int) error {
	s.i++ // '{'
	baseSpans, baseNames := len(s.spans), len(s.names)
	defer func() { s.spans, s.names = s.spans[:baseSpans], s.names[:baseNames] }()
	var many map[string]struct{}
	s.skipSpace()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		s.skipSpace()
		if s.peek() != '"' {
			return s.fail("expected a member name")
		}
		start := len(s.names)
		if err := s.str(true); err != nil {
			return err
		}
		name := s.names[start:]
		if many != nil {
			if _, dup := many[string(name)]; dup {
				return fmt.Errorf("%w %q", errDuplicateMember, name)
			}
			many[string(name)] = struct{}{}
		} else {
			for _, sp := range s.spans[baseSpans:] {
				if bytes.Equal(s.names[sp.off:sp.end], name) {
					return fmt.Errorf("%w %q", errDuplicateMember, name)
				}
			}
			s.spans = append(s.spans, span{start, len(s.names)})
			if len(s.spans)-baseSpans > manyMembers {
				many = make(map[string]struct{}, 4*manyMembers)
				for _, sp := range s.spans[baseSpans:] {
					many[string(s.names[sp.off:sp.end])] = struct{}{}
				}
			}
		}
		s.skipSpace()
		if s.peek() != ':' {
			return s.fail("expected ':'")
		}
		s.i++
		s.skipSpace()
		if depth == 0 && s.top != nil {
			if err := s.top(name, s.peek()); err != nil {
				return err
			}
		}
		if many != nil {
			s.names = s.names[:start] // the map holds the name
		}
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail("expected ',' or '}'")
		}
	}
}

func (s *jsonScanner) array(depth int) error {
	s.i++ // '['
	s.skipSpace()
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		s.skipSpace()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.fail("expected ',' or ']'")
		}
	}
}

// str scans a string starting at its opening quote. With keep it appends the unescaped text to s.names.
func (s *jsonScanner) str(keep bool) error {
	s.i++ // opening quote
	for {
		if s.i >= len(s.b) {
			return s.fail("unterminated string")
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return nil
		case c < 0x20:
			return s.fail("control character in string")
		case c == '\\':
			r, err := s.escape()
			if err != nil {
				return err
			}
			if keep {
				s.names = utf8.AppendRune(s.names, r)
			}
		case c < utf8.RuneSelf:
			s.i++
			if keep {
				s.names = append(s.names, c)
			}
		default:
			// utf8.DecodeRune refuses overlong forms, encoded surrogates and truncated sequences.
			r, size := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && size <= 1 {
				return s.fail("invalid UTF-8")
			}
			if keep {
				s.names = append(s.names, s.b[s.i:s.i+size]...)
			}
			s.i += size
		}
	}
}

// escape scans one escape sequence starting at its backslash and returns the character it stands for. A \u escape
// of a UTF-16 surrogate must be a high surrogate immediately followed by the escape of a low one.
func (s *jsonScanner) escape() (rune, error) {
	if s.i+1 >= len(s.b) {
		return 0, s.fail("truncated escape")
	}
	e := s.b[s.i+1]
	s.i += 2
	switch e {
	case '"', '\\', '/':
		return rune(e), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, s.fail("invalid escape")
	}
	r, ok := s.hex4()
	if !ok {
		return 0, s.fail(`invalid \u escape`)
	}
	switch {
	case r == 0:
		return 0, s.fail(`\u0000 in string`)
	case 0xDC00 <= r && r <= 0xDFFF:
		return 0, s.fail("unpaired low surrogate")
	case 0xD800 <= r && r <= 0xDBFF:
		if s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
			return 0, s.fail("unpaired high surrogate")
		}
		s.i += 2
		lo, ok := s.hex4()
		if !ok || lo < 0xDC00 || lo > 0xDFFF {
			return 0, s.fail("unpaired high surrogate")
		}
		return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), nil
	}
	return r, nil
}

func (s *jsonScanner) hex4() (rune, bool) {
	if len(s.b)-s.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	s.i += 4
	return r, true
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() error {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return s.fail("invalid number")
	}
	if s.peek() == '.' {
		s.i++
		if s.digits() == 0 {
			return s.fail("invalid number")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return s.fail("invalid number")
		}
	}
	return nil
}

func (s *jsonScanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}
