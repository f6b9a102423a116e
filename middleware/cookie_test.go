package middleware

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCookieNameFromURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"https://abcdefghijklmnopqrst.supabase.co", "sb-abcdefghijklmnopqrst-auth-token"},
		{"http://127.0.0.1:54321", "sb-127-auth-token"},
		{"http://localhost:54321", "sb-localhost-auth-token"},
		{"https://auth.example.com", "sb-auth-auth-token"},
		{"https://qrypt.chat", "sb-qrypt-auth-token"},
		{"https://qrypt.chat/", "sb-qrypt-auth-token"},
		{"HTTPS://ABCDEF.supabase.co", "sb-abcdef-auth-token"},
		{"  https://xydzwxwsbgmznthiiscl.supabase.co  ", "sb-xydzwxwsbgmznthiiscl-auth-token"},
		{"", ""},
		{"not a url", ""},
	} {
		if got := CookieNameFromURL(tc.url); got != tc.want {
			t.Errorf("CookieNameFromURL(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}

// encodeURIComponent mirrors JavaScript's, which @supabase/ssr uses to measure and split values.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func reqWithCookies(t *testing.T, resp *http.Response) *http.Request {
	t.Helper()
	back, _ := cookiesBack(resp)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", back)
	return r
}

func TestWriteReadRoundTripSingle(t *testing.T) {
	t.Parallel()
	sess := sessionJSON(t, "eyJhbGciOiJFUzI1NiJ9.e30.sig", "rt-1", newUUID(), time.Now().Add(time.Hour), nil)
	for _, secure := range []bool{false, true} {
		rec := httptest.NewRecorder()
		WriteSessionCookie(rec, httptest.NewRequest(http.MethodGet, "/", nil), testCookie, sess, secure)
		sc := rec.Result().Header.Values("Set-Cookie")
		if len(sc) != 1 {
			t.Fatalf("Set-Cookie = %v, want one cookie", sc)
		}
		wantPrefix := testCookie + "=base64-" + base64.RawURLEncoding.EncodeToString(sess) + "; "
		if !strings.HasPrefix(sc[0], wantPrefix) {
			t.Errorf("Set-Cookie = %s, want prefix %s", sc[0], wantPrefix)
		}
		for _, attr := range []string{"Path=/", "Max-Age=34560000", "SameSite=Lax"} {
			if !strings.Contains(sc[0], attr) {
				t.Errorf("missing %s in %s", attr, sc[0])
			}
		}
		if strings.Contains(sc[0], "HttpOnly") || strings.Contains(sc[0], "Domain") {
			t.Errorf("HttpOnly/Domain present: %s", sc[0])
		}
		if got := strings.Contains(sc[0], "Secure"); got != secure {
			t.Errorf("Secure = %v, want %v", got, secure)
		}
		got, err := ReadSessionCookie(reqWithCookies(t, rec.Result()), testCookie)
		if err != nil {
			t.Fatal(err)
		}
		if got.RefreshToken != "rt-1" || !bytes.Equal(got.Raw, sess) {
			t.Errorf("round trip = %+v", got)
		}
	}
}

func TestWriteReadRoundTripChunked(t *testing.T) {
	t.Parallel()
	sess := sessionJSON(t, "tok", "rt", newUUID(), time.Now().Add(time.Hour), map[string]any{"bio": strings.Repeat("é€😀", 1500)})
	// The request carried the single form and five chunks: the single and surplus chunks must be deleted.
	carriedReq := httptest.NewRequest(http.MethodGet, "/", nil)
	carriedReq.Header.Set("Cookie", testCookie+"=old; "+testCookie+".0=a; "+testCookie+".1=b; "+testCookie+".9=z; unrelated=1")
	rec := httptest.NewRecorder()
	WriteSessionCookie(rec, carriedReq, testCookie, sess, false)
	resp := rec.Result()
	var live []string
	_, deleted := cookiesBack(resp)
	for _, c := range resp.Cookies() {
		if c.MaxAge > 0 {
			live = append(live, c.Name)
			if len(c.Value) > CookieChunkSize {
				t.Errorf("%s is %d chars, limit %d", c.Name, len(c.Value), CookieChunkSize)
			}
			if c.Name != testCookie+".0" && strings.HasPrefix(c.Value, "base64-") {
				t.Errorf("%s repeats the base64- prefix", c.Name)
			}
		}
	}
	n := len(live)
	if n < 3 {
		t.Fatalf("chunks = %v, want several", live)
	}
	for i, name := range live {
		if want := testCookie + "." + strconv.Itoa(i); name != want {
			t.Errorf("chunk %d named %s, want %s", i, name, want)
		}
	}
	wantDeleted := map[string]bool{testCookie: true, testCookie + ".9": true}
	for _, d := range deleted {
		if !wantDeleted[d] {
			t.Errorf("unexpected deletion of %s", d)
		}
		delete(wantDeleted, d)
	}
	if len(wantDeleted) != 0 {
		t.Errorf("not deleted: %v", wantDeleted)
	}
	got, err := ReadSessionCookie(reqWithCookies(t, resp), testCookie)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Raw, sess) {
		t.Error("chunked round trip changed the session")
	}

	// Writing the single form afterwards deletes every chunk the request carried.
	small := sessionJSON(t, "tok", "rt", newUUID(), time.Now().Add(time.Hour), nil)
	rec = httptest.NewRecorder()
	WriteSessionCookie(rec, reqWithCookies(t, resp), testCookie, small, false)
	_, deleted = cookiesBack(rec.Result())
	if len(deleted) != n {
		t.Errorf("deleted %v, want all %d chunks", deleted, n)
	}
}

// TestChunkerNeverSplitsEscapes checks the raw (URL-encoded JSON) form: no chunk ends inside a %XX escape or inside
// the escapes of one multi-byte character, every chunk fits, and the pieces reassemble exactly.
func TestChunkerNeverSplitsEscapes(t *testing.T) {
	t.Parallel()
	pb, _ := json.Marshal(map[string]any{"access_token": "x", "user": map[string]any{"name": strings.Repeat("aé€😀 \"&=;", 400)}})
	payload := strings.ReplaceAll(string(pb), `\u0026`, "&") // keep raw '&' so that it is escaped in the cookie
	enc := encodeURIComponent(payload)
	for size := CookieChunkSize - 12; size <= CookieChunkSize; size++ {
		chunks := chunkCookieValue(enc, size)
		if strings.Join(chunks, "") != enc {
			t.Fatalf("size %d: chunks do not reassemble", size)
		}
		for i, c := range chunks {
			if len(c) > size {
				t.Fatalf("size %d: chunk %d has %d chars", size, i, len(c))
			}
			d, err := url.PathUnescape(c)
			if err != nil || !utf8.ValidString(d) {
				t.Fatalf("size %d: chunk %d does not decode on its own (err %v), ends %q", size, i, err, c[max(0, len(c)-8):])
			}
		}
	}
	// And the reader accepts the raw form spread over chunks.
	chunks := chunkCookieValue(enc, CookieChunkSize)
	var parts []string
	for i, c := range chunks {
		parts = append(parts, testCookie+"."+strconv.Itoa(i)+"="+c)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", strings.Join(parts, "; "))
	s, err := ReadSessionCookie(r, testCookie)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Raw) != payload {
		t.Error("raw form round trip changed the payload")
	}
}

func TestReadSessionCookieLimits(t *testing.T) {
	t.Parallel()
	sess := sessionJSON(t, "tok", "rt", newUUID(), time.Now().Add(time.Hour), nil)
	enc := "base64-" + base64.RawURLEncoding.EncodeToString(sess)
	split := func(n int) string {
		var parts []string
		for i := range n {
			parts = append(parts, testCookie+"."+strconv.Itoa(i)+"="+enc[i*len(enc)/n:(i+1)*len(enc)/n])
		}
		return strings.Join(parts, "; ")
	}
	read := func(header string) error {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", header)
		_, err := ReadSessionCookie(r, testCookie)
		return err
	}
	if err := read(split(10)); err != nil {
		t.Errorf("10 chunks: %v", err)
	}
	if err := read(split(11)); !errors.Is(err, ErrBadSessionCookie) {
		t.Errorf("11 chunks: %v", err)
	}
	if err := read(""); !errors.Is(err, ErrNoSessionCookie) {
		t.Errorf("no cookie: %v", err)
	}
	if err := read(testCookie + "="); !errors.Is(err, ErrNoSessionCookie) {
		t.Errorf("empty cookie: %v", err)
	}
	if err := read(testCookie + `="` + enc + `"`); err != nil {
		t.Errorf("quoted value: %v", err)
	}
	if err := read(testCookie + "-code-verifier=abc; " + testCookie + ".x=1; " + testCookie + ".00=1"); !errors.Is(err, ErrNoSessionCookie) {
		t.Errorf("look-alike names: %v", err)
	}
	// The base cookie wins over chunks when non-empty.
	if err := read(testCookie + "=" + enc + "; " + testCookie + ".0=garbage"); err != nil {
		t.Errorf("base + stray chunk: %v", err)
	}
	// Several Cookie header lines (HTTP/2 sends one per cookie).
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Add("Cookie", testCookie+".0="+enc[:40])
	r.Header.Add("Cookie", testCookie+".1="+enc[40:])
	if _, err := ReadSessionCookie(r, testCookie); err != nil {
		t.Errorf("split across header lines: %v", err)
	}
}

func TestClearSessionCookie(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", testCookie+".0=a; "+testCookie+".1=b; other=c")
	rec := httptest.NewRecorder()
	ClearSessionCookie(rec, r, testCookie)
	var names []string
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge >= 0 || c.Value != "" || c.Path != "/" {
			t.Errorf("not a deletion: %+v", c)
		}
		names = append(names, c.Name)
	}
	slices.Sort(names)
	if got, want := strings.Join(names, ","), testCookie+","+testCookie+".0,"+testCookie+".1"; got != want {
		t.Errorf("deleted %s, want %s", got, want)
	}
	for _, sc := range rec.Result().Header.Values("Set-Cookie") {
		if !strings.Contains(sc, "Max-Age=0") {
			t.Errorf("deletion without Max-Age=0: %s", sc)
		}
	}
}
