package relay

import "net/http"

// SetStreamHeaders sets the response headers of GET /api/events (sse.md §1) on h: the event-stream type, no
// caching or transformation, keep-alive on HTTP/1.x (protoMajor 1; the header is forbidden in HTTP/2), and no
// proxy buffering. ServeStream uses it, and so does anything answering for the stream without running it (HEAD),
// so the two can never disagree.
func SetStreamHeaders(h http.Header, protoMajor int) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	if protoMajor == 1 {
		h.Set("Connection", "keep-alive")
	}
	h.Set("X-Accel-Buffering", "no")
}
