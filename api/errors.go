package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/qryptchat/suparelay/supa"
)

// maxJSONBody is the body limit for JSON routes (routes.md §2.3).
const maxJSONBody = 1 << 20

// writeJSON sends v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"Internal server error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// errorBody is the usual {"error": "..."} answer.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// fileErrorBody is the body of the files routes, which the browser reads through `message` (routes.md §8).
type fileErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeFileError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, fileErrorBody{Error: msg, Message: msg})
}

// errBodyTooLarge and errBadJSON are the answers of decodeJSON.
var (
	errBodyTooLarge = errors.New("Request body too large")
	errBadJSON      = errors.New("Invalid JSON")
)

// decodeJSON reads a JSON object body of at most maxJSONBody bytes into dst. An empty body decodes as {}. It
// returns errBodyTooLarge or errBadJSON; the caller chooses the answer (routes differ in their texts).
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	body := http.MaxBytesReader(w, r.Body, maxJSONBody)
	data, err := readBody(body, r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errBodyTooLarge
		}
		return errBadJSON
	}
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	if err := json.Unmarshal(data, dst); err != nil {
		return errBadJSON
	}
	if hasNULEscape(data) {
		// PostgreSQL text and jsonb cannot hold U+0000: such a body could only fail later, as a 500.
		return errBadJSON
	}
	return nil
}

// readBody reads a body of declared length n (-1: unknown) in one buffer of that size when it is within the body
// limit, instead of io.ReadAll's doublings (a send is ~0.5 MB: nine copies of growing buffers).
func readBody(body io.Reader, n int64) ([]byte, error) {
	if n <= 0 || n > maxJSONBody {
		return io.ReadAll(body)
	}
	buf := make([]byte, 0, n+1) // +1: the read that sees the end needs room
	for {
		m, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) { // longer than declared (net/http prevents it): read the rest the usual way
			rest, err := io.ReadAll(body)
			return append(buf, rest...), err
		}
	}
}

// hasNULEscape reports whether a JSON text contains the escape \u0000 (raw NUL bytes are already invalid JSON).
func hasNULEscape(data []byte) bool {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		if i+5 < len(data) && data[i+1] == 'u' && string(data[i+2:i+6]) == "0000" {
			return true
		}
		i++ // skip the escaped character, so that \\u0000 (a backslash, then text) does not count
	}
	return false
}

// readJSON decodes the body and answers the standard 413/400 itself; it returns false when it has answered.
func readJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	switch err := decodeJSON(w, r, dst); {
	case err == nil:
		return true
	case errors.Is(err, errBodyTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "Request body too large")
	default:
		writeError(w, http.StatusBadRequest, "Invalid JSON")
	}
	return false
}

// isJSONContent reports whether the request declares a JSON body (or none).
func isJSONContent(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// answer is one failure answer of a route: a status and the contract's text for it.
type answer struct {
	status int
	text   string
}

// failures is what a route answers when a data call fails — the one place where errors become HTTP answers. The
// route hands over only its contract texts:
//   - refusals: the answers to named refusals of our RPCs (supa.ErrNotParticipant, supa.ErrNoRecipients, …),
//     checked first;
//   - internal: the route's 500 text, also the text of every failure it names nothing else for;
//   - fixed: the route's contract answers 500 for every failure except an unreachable or slow Supabase (502/504);
//     otherwise the status follows the kind of failure (no row → 404, refused → 403, conflict → 409, bad input →
//     400, unreachable → 502, timeout → 504);
//   - files: the body is the files routes' {"error","message"} instead of {"error"};
//   - details: the 500 body also carries this "details" text (routes whose contract adds one).
//
// supa's own sentinels that carry no PostgREST answer count as the kind they mean: no users row
// (supa.ErrNoProfile) is "no row"; several rows for one auth uid (supa.ErrDuplicateProfile) is a plain failure.
//
// A request whose client went away is answered 499 and logged at debug level: it is not a Supabase failure.
type failures struct {
	refusals map[error]answer
	internal string
	fixed    bool
	files    bool
	details  string
}

// overloadedText is the answer of a call the PostgREST gate shed (503, Retry-After: 1).
const overloadedText = "Server busy, please try again"

// fail answers err for a route; see failures.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, f failures) {
	if s.clientGone(w, r, err) {
		return
	}
	write := writeError
	if f.files {
		write = writeFileError
	}
	for sentinel, a := range f.refusals {
		if errors.Is(err, sentinel) {
			write(w, a.status, a.text)
			return
		}
	}
	status := http.StatusInternalServerError
	switch kind := failureKind(err); {
	case kind == supa.KindOverloaded:
		// Shed before anything reached the database: a fast, honest "try again", with its own text (the route's
		// 500 text would say something broke).
		w.Header().Set("Retry-After", "1")
		write(w, http.StatusServiceUnavailable, overloadedText)
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "shed: PostgREST slots full", slog.String("path", r.URL.Path))
		return
	case kind == supa.KindRolledBack:
		// The database chose this transaction as a deadlock victim (after supa's own retries): nothing was stored
		// and the same request may succeed in a moment — the client's "try again", not a 500.
		w.Header().Set("Retry-After", "1")
		write(w, http.StatusServiceUnavailable, overloadedText)
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "database lock conflict: transaction rolled back",
			slog.String("path", r.URL.Path), slog.Any("err", err))
		return
	case kind == supa.KindUnavailable:
		status = http.StatusBadGateway
	case kind == supa.KindTimeout:
		status = http.StatusGatewayTimeout
	case f.fixed:
	case kind == supa.KindNotFound:
		status = http.StatusNotFound
	case kind == supa.KindForbidden:
		status = http.StatusForbidden
	case kind == supa.KindConflict:
		status = http.StatusConflict
	case kind == supa.KindBadInput:
		status = http.StatusBadRequest
	}
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "supabase call failed",
		slog.String("path", r.URL.Path), slog.Int("status", status), slog.Any("err", err))
	if f.details != "" && status == http.StatusInternalServerError {
		writeJSON(w, status, map[string]string{"error": f.internal, "details": f.details})
		return
	}
	write(w, status, f.internal)
}

// failureKind is supa.KindOf, with the kinds of the supa sentinels that stand for no PostgREST answer (see
// failures). A refusal of our RPCs that names the same sentinel keeps the kind of its HTTP status.
func failureKind(err error) supa.Kind {
	var e *supa.Error
	if !errors.As(err, &e) && errors.Is(err, supa.ErrNoProfile) {
		return supa.KindNotFound
	}
	return supa.KindOf(err)
}

// statusClientClosed answers a request whose client went away before the answer was ready (the de-facto "client
// closed request" status): nobody reads it, and it keeps such requests out of the 5xx counts.
const statusClientClosed = 499

// clientGone handles a failed Supabase call that failed only because the caller went away (a browser reloading or
// leaving the page cancels the request, and with it the call): that is not a Supabase failure, so it is logged at
// debug level and answered statusClientClosed instead of a warning and a 502. It reports whether it answered.
func (s *Server) clientGone(w http.ResponseWriter, r *http.Request, err error) bool {
	if r.Context().Err() == nil || !errors.Is(err, context.Canceled) {
		return false
	}
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "client went away during a supabase call",
		slog.String("path", r.URL.Path), slog.Any("err", err))
	w.WriteHeader(statusClientClosed)
	return true
}
