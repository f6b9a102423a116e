package relay

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

func benchRecord(b *testing.B) *record {
	row := json.RawMessage(`{"id":"0b8f3c2e-4a57-4c1e-9a63-1f2d3e4c5b6a","conversation_id":"d0000000-0000-4000-8000-000000000002",` +
		`"sender_id":"a1111111-1111-4111-8111-111111111111","message_type":"text","encrypted_content":"\\x7b7d",` +
		`"created_at":"2025-01-01T12:00:00.000Z","has_attachments":false,"sender":{"id":"a1111111","username":"alice"}}`)
	ev := NewMessageEvent(row)
	data, err := ev.normalize()
	if err != nil {
		b.Fatal(err)
	}
	return newRecord(wireRecord{K: "r", R: "room", T: ev.Type, D: data}, Position{Offset: 42, Epoch: "abcdefghijkl"}, time.Now())
}

// BenchmarkAppendFrame is the per-delivery cost: envelope head, a fresh timestamp, and the pre-built tail.
func BenchmarkAppendFrame(b *testing.B) {
	rec := benchRecord(b)
	buf := make([]byte, 0, 4096)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf = appendFrame(buf[:0], rec, now)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDecodeRecord is the per-node cost of one broker record (decode and pre-build the frame halves).
func BenchmarkDecodeRecord(b *testing.B) {
	rec := benchRecord(b)
	data, _ := encodeRecord(wireRecord{K: "r", R: "room", T: rec.typ, D: json.RawMessage(`{"message":{"id":"x"},"shouldReloadMessages":true}`)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeRecord(data, Position{Offset: 1, Epoch: "e"}, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFanout10k measures queueing one room event for 10,000 local members (the broker-to-queues part of a
// delivery; writing to sockets is measured by cmd/relaybench).
func BenchmarkFanout10k(b *testing.B) {
	const members = 10000
	ctx := context.Background()
	mb := NewMemoryBroker(MemoryBrokerConfig{})
	h := NewHub(mb, HubConfig{QueueSize: 1024, MaxStreamsPerNode: members + 1}, nil, nil)
	if err := h.Start(ctx); err != nil {
		b.Fatal(err)
	}
	var streams []*stream
	for i := 0; i < members; i++ {
		u := "u" + strconv.Itoa(i)
		if err := h.Join(ctx, "big", u); err != nil {
			b.Fatal(err)
		}
		st, err := h.register(u)
		if err != nil {
			b.Fatal(err)
		}
		h.loadRooms(ctx, st.s.u)
		streams = append(streams, st.s)
	}
	ev := textEvent("E", "x")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := h.PublishToRoom(ctx, "big", ev, PublishOptions{}); err != nil {
			b.Fatal(err)
		}
		if i%512 == 511 {
			b.StopTimer()
			for _, s := range streams {
				for len(s.ch) > 0 {
					<-s.ch
				}
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/members, "ns/delivery")
}
