package stampscan

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestScanAcrossReads: CONNECTED and stamps cut at every byte boundary (one-byte reads) are all found, in order,
// and nothing before CONNECTED counts.
func TestScanAcrossReads(t *testing.T) {
	stream := `data: {"t":1}` + "\n\nevent: CONNECTED\ndata: {}\n\n" +
		`event: E` + "\n" + `data: {"t":123456789,"p":"x"}` + "\n\n" +
		"1a\r\n" + `data: {"t":987` + "\r\n" + `654}` + "\n\n" + // a chunk boundary inside the number is not digits
		`data: {"t":42}` + "\n\n"
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(stream),
		"one byte": iotest.OneByteReader(strings.NewReader(stream)),
	} {
		s := New()
		var got []int64
		var bad, connects int
		for {
			now, err := s.Read(r, func(ns int64, ok bool) {
				if ok {
					got = append(got, ns)
				} else {
					bad++
				}
			})
			if now {
				connects++
			}
			if err != nil {
				break
			}
		}
		if connects != 1 || !s.Connected() {
			t.Errorf("%s: CONNECTED seen %d times", name, connects)
		}
		// "987" ends at the chunk's CR: a stamp of 987 (the tools time real single-chunk events, whose stamps are
		// never split by chunk framing); the stamp before CONNECTED is not counted.
		if want := []int64{123456789, 987, 42}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] ||
			got[2] != want[2] || bad != 0 {
			t.Errorf("%s: stamps %v (bad %d), want %v", name, got, bad, want)
		}
	}
}
