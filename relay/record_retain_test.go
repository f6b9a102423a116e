package relay

import (
	"strings"
	"testing"
	"unsafe"
)

// TestParseRecordKeepsNoPayload: a parsed record shares no memory with the pub/sub payload it came from, so the
// history (which keeps the record's position for as long as the record) never holds the payload a second time.
func TestParseRecordKeepsNoPayload(t *testing.T) {
	payload := "e" + "ep0ch:7:1700000000000:" + `{"k":"r","r":"room","t":"NEW_MESSAGE","d":{"x":"` + strings.Repeat("y", 4096) + `"}}`
	m, err := parseRecord(payload)
	if err != nil {
		t.Fatal(err)
	}
	if m.Pos.Epoch != "ep0ch" || m.Pos.Offset != 7 {
		t.Fatalf("pos = %+v", m.Pos)
	}
	lo := uintptr(unsafe.Pointer(unsafe.StringData(payload)))
	hi := lo + uintptr(len(payload))
	if p := uintptr(unsafe.Pointer(unsafe.StringData(m.Pos.Epoch))); p >= lo && p < hi {
		t.Error("the epoch is a substring of the payload: the record would keep the whole payload alive")
	}
	if len(m.Data) > 0 {
		if p := uintptr(unsafe.Pointer(&m.Data[0])); p >= lo && p < hi {
			t.Error("Data aliases the payload")
		}
	}
}
