package relay

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qryptchat/suparelay/internal/netpoll"
)

// detach serves a hijacked HTTP/1.1 stream on a goroutine of its own. The point is memory: net/http keeps about
// 10 KiB of buffers and a deep goroutine stack per connection for as long as a handler runs; a detached stream
// holds the raw connection, a small stack and its queue, and frames the response itself (chunked encoding).
// The client closing the connection is noticed as net/http's background read would: by the hub's CloseWatcher
// (epoll), or by a tiny reader goroutine where there is none. An SSE client sends nothing more, so anything to
// read means it is gone.
func (h *Hub) detach(conn net.Conn, hdr http.Header, st streamStart) {
	cw := &chunkWriter{conn: conn, dl: writeDeadline{timeout: h.cfg.WriteTimeout}, head: responseHead(hdr)}
	ctx, cancel := context.WithCancel(context.Background())
	var watch *netpoll.Watch
	var lean atomic.Pointer[leanStream] // set once the stream is lean: a hang-up must then also kick it
	if h.cfg.CloseWatcher != nil {
		watch, _ = h.cfg.CloseWatcher.Watch(conn, func() {
			cancel()
			if ls := lean.Load(); ls != nil {
				ls.kick()
			}
		})
	}
	if watch == nil {
		go func() {
			var b [1]byte
			_, _ = conn.Read(b[:])
			cancel()
		}()
	}
	go func() {
		skip, ok := h.prepare(ctx, cw, st)
		if ok && h.lean != nil && watch != nil {
			h.goLean(conn, cw, ctx, cancel, watch, st, skip, &lean) // this goroutine ends; lean.go serves the stream
			return
		}
		if ok {
			h.loop(ctx, cw, st.s, skip, st.expires)
		}
		cw.finish()
		h.unregister(st.s)
		cancel()
		if watch != nil {
			watch.Stop() // before Close: the descriptor number may be reused at once
		}
		_ = conn.Close()
	}()
}

// responseHead renders the status line and headers (the caller's, e.g. Set-Cookie, and the stream's).
func responseHead(hdr http.Header) []byte {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\n")
	for k, vs := range hdr {
		for _, v := range vs {
			if strings.ContainsAny(k, "\r\n: ") || strings.ContainsAny(v, "\r\n") {
				continue // never let a header split the response
			}
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n")
	b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	return []byte(b.String())
}

// chunkWriter writes each batch as one HTTP/1.1 chunk in one write call, with a per-write deadline. The response
// head goes out with the first batch, so headers and CONNECTED arrive together.
type chunkWriter struct {
	conn net.Conn
	dl   writeDeadline
	head []byte
}

func (cw *chunkWriter) write(b []byte) error {
	if len(b) == 0 && cw.head == nil {
		return nil
	}
	bp := bufPool.Get().(*[]byte)
	out := cw.appendChunk((*bp)[:0], b)
	if at, renew := cw.dl.renew(); renew {
		_ = cw.conn.SetWriteDeadline(at)
	}
	_, err := cw.conn.Write(out)
	if cap(out) <= 256<<10 {
		*bp = out[:0]
		bufPool.Put(bp)
	}
	return err
}

// appendChunk appends the response head (before the first chunk only) and b as one chunk.
func (cw *chunkWriter) appendChunk(out, b []byte) []byte {
	out = append(out, cw.head...)
	cw.head = nil
	if len(b) > 0 {
		out = strconv.AppendInt(out, int64(len(b)), 16)
		out = append(out, "\r\n"...)
		out = append(out, b...)
		out = append(out, "\r\n"...)
	}
	return out
}

// writeWithin writes b as one chunk like write, but gives the socket only d; on a timeout it returns the bytes
// the write left unwritten (a partial chunk included), for a goroutine that may wait longer.
func (cw *chunkWriter) writeWithin(b []byte, d time.Duration) (rest []byte, err error) {
	bp := bufPool.Get().(*[]byte)
	out := cw.appendChunk((*bp)[:0], b)
	_ = cw.conn.SetWriteDeadline(time.Now().Add(d))
	cw.dl.at = time.Time{} // the next write sets a full deadline again
	n, err := cw.conn.Write(out)
	if err != nil {
		rest = append([]byte(nil), out[n:]...)
	}
	if cap(out) <= 256<<10 {
		*bp = out[:0]
		bufPool.Put(bp)
	}
	return rest, err
}

// writeRaw writes bytes already framed (what writeWithin left unwritten), with a full deadline.
func (cw *chunkWriter) writeRaw(b []byte) error {
	if at, renew := cw.dl.renew(); renew {
		_ = cw.conn.SetWriteDeadline(at)
	}
	_, err := cw.conn.Write(b)
	return err
}

// finish ends the chunked body so the client sees a clean end of stream.
func (cw *chunkWriter) finish() {
	_ = cw.conn.SetWriteDeadline(time.Now().Add(cw.dl.timeout))
	_, _ = cw.conn.Write([]byte("0\r\n\r\n"))
}
