package middleware

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
	// ErrBadSessionCookie: a session cookie is present but malformed (duplicates, too many or too large chunks,
	// bad URL escapes, bad base64, JSON that is not a session).
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

// carried is what the request holds under one session cookie name.
type carried struct {
	base    string
	hasBase bool
	chunks  map[int]string // index -> value, only indexes < 1000
}

// readCarried parses the Cookie headers for name and name.N. The standard library parser is not used because it
// silently drops values with characters it dislikes and keeps duplicates without telling; here a duplicate of any of
// our names is an error (two different sessions, or a replayed chunk, must not be silently merged).
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
				if c.hasBase {
					return c, fmt.Errorf("%w: duplicate cookie %s", ErrBadSessionCookie, name)
				}
				c.base, c.hasBase = v, true
			} else if idx, ok := chunkIndex(n[len(name):]); ok {
				if c.chunks == nil {
					c.chunks = make(map[int]string)
				}
				if _, dup := c.chunks[idx]; dup {
					return c, fmt.Errorf("%w: duplicate chunk %d", ErrBadSessionCookie, idx)
				}
				c.chunks[idx] = v
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

// value assembles the (still URL-encoded) cookie value: the base cookie if present and non-empty, else chunks .0,
// .1, … up to the first missing index.
func (c carried) value() (string, error) {
	if c.hasBase && c.base != "" {
		return c.base, nil
	}
	if _, ok := c.chunks[0]; !ok {
		return "", ErrNoSessionCookie
	}
	var b strings.Builder
	for i := 0; ; i++ {
		v, ok := c.chunks[i]
		if !ok {
			break
		}
		if i >= MaxCookieChunks {
			return "", fmt.Errorf("%w: more than %d chunks", ErrBadSessionCookie, MaxCookieChunks)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// ReadSessionCookie reads the @supabase/ssr session cookie called name (auth.md §4.2–4.3): un-suffixed name if
// present and non-empty, else chunks .0, .1, … until the first missing one; at most 10 chunks and 32 KiB; the value
// is URL-decoded, then either "base64-" + base64url (padding tolerated) or raw JSON. It returns ErrNoSessionCookie
// when there is none and an error wrapping ErrBadSessionCookie for anything malformed. It never panics.
func ReadSessionCookie(r *http.Request, name string) (*authsession.Session, error) {
	c, err := readCarried(r, name)
	if err != nil {
		return nil, err
	}
	v, err := c.value()
	if err != nil {
		return nil, err
	}
	return decodeCookieValue(v)
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
	if c.hasBase {
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
