package idlepark

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler serves next; for eligible requests it buffers the response, then writes it and parks the connection
// (see the package comment). Put it outermost, so that every inner writer writes into the buffer.
func (p *Parker) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !eligible(r) || p.isClosed() {
			next.ServeHTTP(w, r)
			return
		}
		bw := newBufferedWriter(w, p.cfg.MaxBuffer)
		defer bw.free()
		body := &trackedBody{rc: r.Body, length: r.ContentLength}
		if r.Body != nil && r.Body != http.NoBody {
			r2 := *r // the handler sees a body whose end the Parker can tell (net/http keeps its own reference)
			r2.Body = body
			r = &r2
		} else {
			body.eof = true
		}
		next.ServeHTTP(bw, r)
		if bw.pass || bw.hijacked {
			return // net/http has the response (streamed, flushed or hijacked)
		}
		if !bw.parkable() || !body.drain(p.cfg.MaxDrain) || p.isClosed() {
			p.fallbacks.Add(1)
			bw.replay()
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			p.fallbacks.Add(1)
			bw.replay()
			return
		}
		out := bw.appendResponse(nil, time.Now())
		_ = conn.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout))
		if _, err := conn.Write(out); err != nil {
			_ = conn.Close()
			return
		}
		_ = conn.SetWriteDeadline(time.Time{})
		p.parks.Add(1)
		p.release(conn, pending(brw))
	})
}

// eligible: plain HTTP/1.1 requests that expect the connection to stay open and ask for nothing special.
func eligible(r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.TLS != nil || r.Close {
		return false
	}
	switch r.Method {
	case http.MethodHead, http.MethodConnect:
		return false // HEAD: net/http's Content-Length rules for HEAD are its own; CONNECT tunnels
	}
	if _, ok := r.Header["Expect"]; ok {
		return false // 100-continue is net/http's to answer
	}
	if _, ok := r.Header["Upgrade"]; ok {
		return false
	}
	return true
}

// pending copies what net/http's reader had buffered beyond this request: the start of a pipelined next one.
func pending(brw *bufio.ReadWriter) []byte {
	if brw == nil || brw.Reader.Buffered() == 0 {
		return nil
	}
	b, _ := brw.Reader.Peek(brw.Reader.Buffered())
	return append([]byte(nil), b...)
}

// trackedBody lets the Parker finish reading the request body after the handler: it records the end of the
// body and keeps a handler's Close from discarding what is left (net/http reads the rest on Close; the Parker
// must know whether it all arrived).
type trackedBody struct {
	rc     io.ReadCloser
	length int64 // the request's ContentLength; -1 when chunked
	read   int64
	eof    bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	if b.rc == nil {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	b.read += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *trackedBody) Close() error { return nil }

// drain reads and drops the rest of the body, at most max bytes; it reports whether the body ended. A declared
// length whose rest exceeds max is not read at all: net/http then closes the connection, as it would alone.
func (b *trackedBody) drain(max int64) bool {
	if b.eof || b.rc == nil || b.rc == http.NoBody {
		return true
	}
	if b.length >= 0 && b.length-b.read > max {
		return false
	}
	_, err := io.CopyN(io.Discard, b, max+1)
	return err == io.EOF && b.eof
}

// bufferedWriter holds a response until the handler returns; beyond MaxBuffer bytes, or on Flush or Hijack, it
// turns into a pass-through to net/http's writer (pass).
type bufferedWriter struct {
	real     http.ResponseWriter
	header   http.Header
	status   int
	sent     http.Header // the headers as they were at WriteHeader, as net/http snapshots them
	buf      *[]byte
	declared int64 // the handler's own Content-Length, -1 if none (net/http refuses writes beyond it)
	max      int
	pass     bool
	hijacked bool
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func newBufferedWriter(real http.ResponseWriter, max int) *bufferedWriter {
	return &bufferedWriter{real: real, header: make(http.Header), buf: bufPool.Get().(*[]byte), max: max}
}

func (w *bufferedWriter) free() {
	if w.buf != nil && cap(*w.buf) <= w.max {
		*w.buf = (*w.buf)[:0]
		bufPool.Put(w.buf)
	}
	w.buf = nil
}

func (w *bufferedWriter) Header() http.Header {
	if w.pass {
		return w.real.Header()
	}
	return w.header
}

func (w *bufferedWriter) WriteHeader(code int) {
	if w.pass {
		w.real.WriteHeader(code)
		return
	}
	if w.status != 0 {
		return // superfluous, as net/http ignores it
	}
	if code < 200 || code > 999 { // informational (or invalid: net/http panics on it): net/http's to write
		w.passThrough()
		w.real.WriteHeader(code)
		return
	}
	w.status = code
	w.sent = w.header.Clone()
	w.declared = -1
	if cl := w.sent.Get("Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.declared = v
		}
	}
}

func (w *bufferedWriter) Write(b []byte) (int, error) {
	if w.pass {
		return w.real.Write(b)
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && int64(len(*w.buf)+len(b)) > w.declared {
		return 0, http.ErrContentLength // as net/http: the write is refused whole
	}
	if len(*w.buf)+len(b) > w.max {
		w.passThrough()
		return w.real.Write(b)
	}
	*w.buf = append(*w.buf, b...)
	return len(b), nil
}

func (w *bufferedWriter) Flush() { _ = w.FlushError() }

// FlushError: a handler that flushes is streaming; net/http takes over.
func (w *bufferedWriter) FlushError() error {
	w.passThrough()
	return http.NewResponseController(w.real).Flush()
}

func (w *bufferedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.passThrough()
	c, brw, err := http.NewResponseController(w.real).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, brw, err
}

// Unwrap lets http.ResponseController reach net/http's writer for deadlines and full duplex.
func (w *bufferedWriter) Unwrap() http.ResponseWriter { return w.real }

// passThrough hands what is buffered to net/http's writer and sends everything after it straight there.
func (w *bufferedWriter) passThrough() {
	if w.pass {
		return
	}
	w.pass = true
	if w.status == 0 {
		copyHeader(w.real.Header(), w.header)
		return
	}
	copyHeader(w.real.Header(), w.sent)
	w.real.WriteHeader(w.status)
	if len(*w.buf) > 0 {
		_, _ = w.real.Write(*w.buf)
		*w.buf = (*w.buf)[:0]
	}
}

// replay gives the whole buffered response to net/http, for a connection that is not parked after all.
func (w *bufferedWriter) replay() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.passThrough()
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}

// parkable: a response the Parker writes exactly as net/http would (framing aside), on a connection that stays
// open.
func (w *bufferedWriter) parkable() bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	h := w.sent
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return false
		}
	}
	if _, ok := h["Trailer"]; ok {
		return false
	}
	if _, ok := h["Transfer-Encoding"]; ok {
		return false
	}
	for _, v := range h["Connection"] {
		if hasToken(v, "close") {
			return false
		}
	}
	if cl, ok := h["Content-Length"]; ok {
		if len(cl) != 1 || !bodyAllowed(w.status) || cl[0] != strconv.Itoa(len(*w.buf)) {
			return false
		}
	}
	return true
}

// appendResponse renders the status line, the handler's headers, then what net/http adds when the handler did
// not set it — Date, Content-Length, a sniffed Content-Type, in net/http's order and after the handler's, as it
// writes them (a handler's non-canonical "content-type" key then comes first on the wire, as there) — and the body.
func (w *bufferedWriter) appendResponse(out []byte, now time.Time) []byte {
	body := *w.buf
	h := w.sent
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(w.status), 10)
	out = append(out, ' ')
	if text := http.StatusText(w.status); text != "" {
		out = append(out, text...)
	} else {
		out = append(out, "status code "...)
		out = strconv.AppendInt(out, int64(w.status), 10)
	}
	out = append(out, "\r\n"...)
	hw := headerBuf{b: out}
	_ = h.Write(&hw) // drops invalid field names and turns newlines in values into spaces, as net/http does
	out = hw.b
	if _, ok := h["Date"]; !ok {
		out = append(out, "Date: "...)
		out = now.UTC().AppendFormat(out, http.TimeFormat)
		out = append(out, "\r\n"...)
	}
	if bodyAllowed(w.status) {
		if _, ok := h["Content-Length"]; !ok {
			out = append(out, "Content-Length: "...)
			out = strconv.AppendInt(out, int64(len(body)), 10)
			out = append(out, "\r\n"...)
		}
		if _, ok := h["Content-Type"]; !ok && len(body) > 0 {
			out = append(out, "Content-Type: "...)
			out = append(out, http.DetectContentType(body)...)
			out = append(out, "\r\n"...)
		}
	}
	out = append(out, "\r\n"...)
	return append(out, body...)
}

type headerBuf struct{ b []byte }

func (h *headerBuf) Write(p []byte) (int, error) { h.b = append(h.b, p...); return len(p), nil }

// WriteString keeps http.Header.Write from allocating a copy of every piece.
func (h *headerBuf) WriteString(s string) (int, error) { h.b = append(h.b, s...); return len(s), nil }

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// hasToken: a comma-separated header value names tok (case-insensitive), as in "Connection: keep-alive, close".
func hasToken(v, tok string) bool {
	for part := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(part), tok) {
			return true
		}
	}
	return false
}
