// Package stampscan reads the raw bytes of an SSE response, chunked or not, and finds only what the load tools
// (cmd/relaybench, bench/streamload) time: the CONNECTED event once, then each event's "t":<unix ns> send stamp.
// That is much cheaper than decoding chunks and lines, which keeps a load generator on the same cores from
// dominating the CPU it measures. Patterns cut by a read boundary are carried into the next read.
package stampscan

import (
	"bytes"
	"io"
	"strconv"
)

var (
	connKey  = []byte("CONNECTED")
	stampKey = []byte(`"t":`)
)

// Scanner scans one stream. It is not safe for concurrent use.
type Scanner struct {
	buf       []byte
	carry     int
	connected bool
}

// New returns a Scanner with a 4 KiB buffer.
func New() *Scanner { return &Scanner{buf: make([]byte, 4096)} }

// Connected reports whether CONNECTED has been seen.
func (s *Scanner) Connected() bool { return s.connected }

// Read reads once from r. connectedNow says that this read brought CONNECTED; stamp is called for every event
// stamp after it (ok = false when the digits did not parse: the event still counts as delivered). The error is r's.
func (s *Scanner) Read(r io.Reader, stamp func(ns int64, ok bool)) (connectedNow bool, err error) {
	n, err := r.Read(s.buf[s.carry:])
	if n == 0 {
		return false, err
	}
	data := s.buf[:s.carry+n]
	i := 0
	if !s.connected {
		j := bytes.Index(data, connKey)
		if j < 0 {
			s.carry = copy(s.buf, data[max(0, len(data)-len(connKey)):])
			return false, err
		}
		s.connected, connectedNow = true, true
		i = j + len(connKey)
	}
	for {
		j := bytes.Index(data[i:], stampKey)
		if j < 0 {
			i = max(i, len(data)-len(stampKey)+1)
			break
		}
		k := i + j + len(stampKey)
		end := k
		for end < len(data) && data[end] >= '0' && data[end] <= '9' {
			end++
		}
		if end == len(data) { // the number is cut by the read: keep it for the next one
			i += j
			break
		}
		t, perr := strconv.ParseInt(string(data[k:end]), 10, 64)
		stamp(t, perr == nil)
		i = end
	}
	s.carry = copy(s.buf, data[i:])
	if s.carry == len(s.buf) {
		s.carry = 0
	}
	return connectedNow, err
}
