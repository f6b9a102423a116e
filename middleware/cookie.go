package middleware

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/qryptchat/suparelay/internal/authsession"
)

// Limits of the @supabase/ssr cookie format (auth.md §4.3).
const (
	CookieChunkSize  = 3180     // longest URL-encoded value written in one cookie
	MaxCookieChunks  = 10       // more chunks than this is refused
	MaxCookieBytes   = 32 << 10 // total of all chunk values
	CookieMaxAge     = 34560000 // 400 days, the library default
	base64Prefix     = "base64-"
	maxChunkIndexLen = 3 // ".N" suffixes longer than this are not ours and are ignored
)

var (
	// ErrNoSessionCookie: the request carries no session cookie (neither the base name nor chunk .0).
	ErrNoSessionCookie = errors.New("no session cookie")
	// ErrBadSessionCookie: a session cookie is present but malformed (too many copies of one name, too many or too
	// large chunks, bad URL escapes, bad base64, JSON that is not a session).
	ErrBadSessionCookie = errors.New("malformed session cookie")
)

// CookieNameFromURL derives the @supabase/ssr cookie name from the Supabase URL the frontend was built with, the
// way supabase-js does: "sb-" + first label of the host name + "-auth-token" (auth.md §4.1). It returns "" for a URL
// without a host.
func CookieNameFromURL(supabaseURL string) string {
	u, err := url.Parse(strings.TrimSpace(supabaseURL))
	if err != nil || u.Hostname() == "" {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") { // IPv6: the browser's URL.hostname keeps the brackets
		host = "[" + host + "]"
	}
	label, _, _ := strings.Cut(host, ".")
	return "sb-" + label + "-auth-token"
}

// carried is what the request holds under one session cookie name. A browser can send the same name more than once:
// a host-only cookie and one set for a parent domain (e.g. by a sibling subdomain of the same Supabase project), or
// the same name under two paths. It sends them most specific path first, then oldest first; nothing in the header
// says which is which, so every value is kept in header order and each plausible session is tried.
type carried struct {
	bases  []string         // values of the un-suffixed name
	chunks map[int][]string // chunk index -> values, only indexes < 1000
}

// MaxDuplicateCookies bounds how many cookies of one name (the base name or one chunk name) a request may carry; a
// browser sends one per matching domain and path, which is a handful at most. More is refused as malformed.
const MaxDuplicateCookies = 4

// maxSessionCandidates bounds how many assembled values are tried for one request (each costs a decode and perhaps
// a signature check). It covers every realistic mix: two cookie jars of up to three chunks each, plus base cookies.
const maxSessionCandidates = 16

// readCarried parses the Cookie headers for name and name.N. The standard library parser is not used because it
// silently drops values with characters it dislikes; here every value of our names is kept, in order, within the
// limits (MaxCookieBytes in all, MaxDuplicateCookies per name).
func readCarried(r *http.Request, name string) (carried, error) {
	c := carried{}
	total := 0
	for _, line := range r.Header.Values("Cookie") {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			n, v, ok := strings.Cut(part, "=")
			if !ok || !strings.HasPrefix(n, name) {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if n == name {
				if len(c.bases) == MaxDuplicateCookies {
					return c, fmt.Errorf("%w: more than %d cookies %s", ErrBadSessionCookie, MaxDuplicateCookies, name)
				}
				c.bases = append(c.bases, v)
			} else if idx, ok := chunkIndex(n[len(name):]); ok {
				if c.chunks == nil {
					c.chunks = make(map[int][]string)
				}
				if len(c.chunks[idx]) == MaxDuplicateCookies {
					return c, fmt.Errorf("%w: more than %d cookies for chunk %d", ErrBadSessionCookie, MaxDuplicateCookies, idx)
				}
				c.chunks[idx] = append(c.chunks[idx], v)
			} else {
				continue
			}
			if total += len(v); total > MaxCookieBytes {
				return c, fmt.Errorf("%w: over %d bytes", ErrBadSessionCookie, MaxCookieBytes)
			}
		}
	}
	return c, nil
}

// chunkIndex parses ".N" (decimal, no sign, no leading zero except "0").
func chunkIndex(suffix string) (int, bool) {
	if len(suffix) < 2 || suffix[0] != '.' || len(suffix) > 1+maxChunkIndexLen {
		return 0, false
	}
	d := suffix[1:]
	if len(d) > 1 && d[0] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(d)
	if err != nil || n < 0 || d[0] == '+' || d[0] == '-' {
		return 0, false
	}
	return n, true
}

// candidates calls yield with each (still URL-encoded) value to try, in order, until yield returns false, at most
// maxSessionCandidates of them. For one cookie set this is exactly the single-cookie rule: the base cookie if
// present and non-empty, else chunks .0, .1, … up to the first missing index. With duplicates: every non-empty base
// value in header order, then every assembly of one value per chunk index (earlier values first), also cut short at
// each index (a jar of two chunks beside one of three: the third chunk belongs to the other jar). It returns
// ErrNoSessionCookie when there is nothing to try and ErrBadSessionCookie for more than MaxCookieChunks chunks.
func (c carried) candidates(yield func(string) bool) error {
	n := 0
	try := func(v string) bool {
		n++
		return yield(v) && n < maxSessionCandidates
	}
	for _, b := range c.bases {
		if b != "" && !try(b) {
			return nil
		}
	}
	length := 0
	dup := false
	for ; len(c.chunks[length]) > 0; length++ {
		if length >= MaxCookieChunks {
			return fmt.Errorf("%w: more than %d chunks", ErrBadSessionCookie, MaxCookieChunks)
		}
		dup = dup || len(c.chunks[length]) > 1
	}
	if length == 0 {
		if n == 0 {
			return ErrNoSessionCookie
		}
		return nil
	}
	var buf []byte
	// walk extends the assembly with a value for index i; it reports false once the candidates must stop.
	var walk func(i int) bool
	walk = func(i int) bool {
		if i == length {
			return try(string(buf))
		}
		mark := len(buf)
		for j, v := range c.chunks[i] {
			if slices.Contains(c.chunks[i][:j], v) {
				continue // the same value twice is one choice
			}
			buf = append(buf[:mark], v...)
			if !walk(i + 1) {
				return false
			}
		}
		buf = buf[:mark]
		if dup && i > 0 {
			return try(string(buf))
		}
		return true
	}
	walk(0)
	return nil
}

// ReadSessionCookie reads the @supabase/ssr session cookie called name (auth.md §4.2–4.3): un-suffixed name if
// present and non-empty, else chunks .0, .1, … until the first missing one; at most 10 chunks and 32 KiB; the value
// is URL-decoded, then either "base64-" + base64url (padding tolerated) or raw JSON. When the request carries the
// name more than once (see carried), it returns the first candidate that decodes. It returns ErrNoSessionCookie
// when there is none and an error wrapping ErrBadSessionCookie when nothing decodes. It never panics.
func ReadSessionCookie(r *http.Request, name string) (*authsession.Session, error) {
	var first *authsession.Session
	err := eachSessionCookie(r, name, func(s *authsession.Session) bool {
		first = s
		return false
	})
	if first != nil {
		return first, nil
	}
	return nil, err
}

// eachSessionCookie calls fn with every candidate session of the request (carried.candidates) that decodes, in
// order, until fn returns false. It returns ErrNoSessionCookie when there is no candidate, and otherwise the first
// error met (a malformed cookie set, or the decoding error of the first candidate) when fn never returned false.
func eachSessionCookie(r *http.Request, name string, fn func(*authsession.Session) bool) error {
	c, err := readCarried(r, name)
	if err != nil {
		return err
	}
	var firstErr error
	stopped := false
	err = c.candidates(func(v string) bool {
		s, derr := decodeCookieValue(v)
		if derr != nil {
			if firstErr == nil {
				firstErr = derr
			}
			return true
		}
		stopped = !fn(s)
		return !stopped
	})
	switch {
	case stopped:
		return nil
	case err != nil:
		return err
	}
	return firstErr
}

// decodeCookieValue turns an assembled wire value into a session.
func decodeCookieValue(v string) (*authsession.Session, error) {
	if strings.IndexByte(v, '%') >= 0 {
		var err error
		if v, err = url.PathUnescape(v); err != nil {
			return nil, fmt.Errorf("%w: URL escape", ErrBadSessionCookie)
		}
	}
	raw := []byte(v)
	if strings.HasPrefix(v, base64Prefix) {
		var err error
		raw, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(v[len(base64Prefix):], "="))
		if err != nil {
			return nil, fmt.Errorf("%w: base64", ErrBadSessionCookie)
		}
	}
	s, err := authsession.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSessionCookie, err)
	}
	return s, nil
}

// WriteSessionCookie sets the session cookie in the library's default form ("base64-" + base64url without
// padding), split into name.0, name.1, … when longer than 3180 characters, and deletes the cookies of the other
// form (and surplus chunks) that the request carried, so the browser is never left with a stale mix (auth.md §4.3).
// Attributes: Path=/, Max-Age=34560000, SameSite=Lax, Secure iff secure, never HttpOnly (the browser client reads
// and rewrites it). Call it before the response header is written.
func WriteSessionCookie(w http.ResponseWriter, r *http.Request, name string, sessionJSON []byte, secure bool) {
	chunks := chunkCookieValue(base64Prefix+base64.RawURLEncoding.EncodeToString(sessionJSON), CookieChunkSize)
	c, _ := readCarried(r, name) // even a malformed request cookie set is replaced; partial parse is enough here
	if len(chunks) == 1 {
		setCookie(w, name, chunks[0], CookieMaxAge, secure)
		for idx := range c.chunks {
			setCookie(w, name+"."+strconv.Itoa(idx), "", -1, secure)
		}
		return
	}
	for i, v := range chunks {
		setCookie(w, name+"."+strconv.Itoa(i), v, CookieMaxAge, secure)
	}
	if len(c.bases) > 0 {
		setCookie(w, name, "", -1, secure)
	}
	for idx := range c.chunks {
		if idx >= len(chunks) {
			setCookie(w, name+"."+strconv.Itoa(idx), "", -1, secure)
		}
	}
}

// ClearSessionCookie deletes the session cookie: the base name always, plus every chunk the request carried.
func ClearSessionCookie(w http.ResponseWriter, r *http.Request, name string) {
	c, _ := readCarried(r, name)
	setCookie(w, name, "", -1, false)
	for idx := range c.chunks {
		setCookie(w, name+"."+strconv.Itoa(idx), "", -1, false)
	}
}

func setCookie(w http.ResponseWriter, name, value string, maxAge int, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge, SameSite: http.SameSiteLaxMode, Secure: secure,
	})
}

// chunkCookieValue splits an already URL-encoded value into pieces of at most size characters without cutting a
// %XX escape or the escapes of one multi-byte UTF-8 character, like @supabase/ssr's createChunks. The base64 form
// never contains escapes; the raw-JSON form can, which is why the rule exists.
func chunkCookieValue(encoded string, size int) []string {
	if len(encoded) <= size {
		return []string{encoded}
	}
	var out []string
	for encoded != "" {
		head := encoded[:min(size, len(encoded))]
		if p := strings.LastIndexByte(head, '%'); p >= 0 && p > len(head)-3 && len(head) < len(encoded) {
			head = head[:p]
		}
		// Drop trailing escapes while they end inside a multi-byte character.
		for len(head) > 3 && head[len(head)-3] == '%' && !decodesWhole(head) {
			head = head[:len(head)-3]
		}
		if head == "" { // malformed input: never loop forever
			head = encoded[:min(size, len(encoded))]
		}
		out = append(out, head)
		encoded = encoded[len(head):]
	}
	return out
}

func decodesWhole(s string) bool {
	d, err := url.PathUnescape(s)
	return err == nil && utf8.ValidString(d)
}
