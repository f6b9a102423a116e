package relay

import (
	"strconv"
	"strings"
	"time"
)

func frameHead(typ string) []byte {
	return []byte("event: " + typ + "\ndata: {\"type\":\"" + typ + "\",\"timestamp\":\"")
}

// frameTail ends the data line and adds the id (and retry, when > 0) lines and the blank line.
func frameTail(data []byte, id string, retry time.Duration) []byte {
	b := make([]byte, 0, len(data)+len(id)+48)
	b = append(b, `","data":`...)
	b = append(b, data...)
	b = append(b, "}\nid: "...)
	b = append(b, id...)
	b = append(b, '\n')
	if retry > 0 {
		b = append(b, "retry: "...)
		b = strconv.AppendInt(b, retry.Milliseconds(), 10)
		b = append(b, '\n')
	}
	return append(b, '\n')
}

const timestampLayout = "2006-01-02T15:04:05.000Z"

// formatTimestamp is JavaScript's Date.prototype.toISOString: UTC, milliseconds, "Z".
func appendTimestamp(b []byte, t time.Time) []byte { return t.UTC().AppendFormat(b, timestampLayout) }

func appendFrame(b []byte, r *record, now time.Time) []byte {
	b = append(b, r.head...)
	b = appendTimestamp(b, now)
	return append(b, r.tail...)
}

func appendHeartbeat(b []byte, now time.Time) []byte {
	b = append(b, ": keep-alive "...)
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	return append(b, "\n\n"...)
}

func appendRetry(b []byte, d time.Duration) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, d.Milliseconds(), 10)
	return append(b, "\n\n"...)
}

// formatID is the SSE id of a position: "<epoch>-<offset>". Epochs are base-36, so neither part can hold '-',
// a newline or a NUL (which would make browsers ignore the id).
func formatID(p Position) string { return p.Epoch + "-" + strconv.FormatUint(p.Offset, 10) }

// parseID reads a Last-Event-ID. Anything malformed (or with control characters) is "no position".
func parseID(s string) (Position, bool) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 || len(s) > 64 {
		return Position{}, false
	}
	for j := 0; j < i; j++ {
		c := s[j]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return Position{}, false
		}
	}
	off, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil {
		return Position{}, false
	}
	return Position{Offset: off, Epoch: s[:i]}, true
}
