package relay

import "time"

// ring is the node's copy of the recent log: every record the broker delivered, contiguous by offset within one
// epoch, bounded by count and age. It serves almost every resume without a broker round trip (every node sees
// every record, so a client moving between nodes finds the same offsets). Guarded by the Hub's mutex.
type ring struct {
	buf   []*record
	start int // index of the oldest
	n     int
	ttl   time.Duration
}

func newRing(size int, ttl time.Duration) *ring { return &ring{buf: make([]*record, size), ttl: ttl} }

func (g *ring) at(i int) *record { return g.buf[(g.start+i)%len(g.buf)] }

func (g *ring) reset() {
	clear(g.buf)
	g.start, g.n = 0, 0
}

// add appends r, restarting the ring when r does not directly follow the newest record.
func (g *ring) add(r *record) {
	if g.n > 0 {
		last := g.at(g.n - 1)
		if last.pos.Epoch != r.pos.Epoch || last.pos.Offset+1 != r.pos.Offset {
			g.reset()
		}
	}
	if g.n == len(g.buf) {
		g.buf[g.start] = nil
		g.start = (g.start + 1) % len(g.buf)
		g.n--
	}
	g.buf[(g.start+g.n)%len(g.buf)] = r
	g.n++
}

// since returns the records with after.Offset < offset <= upto, or ok=false when the ring cannot serve that whole
// range (other epoch, trimmed, or older than the TTL).
func (g *ring) since(after Position, upto uint64, now time.Time) ([]*record, bool) {
	if after.Offset >= upto {
		return nil, true
	}
	if g.n == 0 {
		return nil, false
	}
	first := g.at(0)
	if first.pos.Epoch != after.Epoch || after.Offset+1 < first.pos.Offset {
		return nil, false
	}
	last := g.at(g.n - 1).pos.Offset
	if upto > last {
		return nil, false
	}
	i := int(after.Offset + 1 - first.pos.Offset)
	if r := g.at(i); now.Sub(r.at) > g.ttl {
		return nil, false
	}
	out := make([]*record, 0, int(upto-after.Offset))
	for ; i < g.n && g.at(i).pos.Offset <= upto; i++ {
		out = append(out, g.at(i))
	}
	return out, true
}

// covers reports whether the ring can replay everything after `after` (up to its newest record) without a gap,
// within the TTL.
func (g *ring) covers(after Position, now time.Time) bool {
	if g.n == 0 {
		return false
	}
	first := g.at(0)
	if first.pos.Epoch != after.Epoch || after.Offset+1 < first.pos.Offset {
		return false
	}
	i := int(min(after.Offset+1-first.pos.Offset, uint64(g.n)))
	return i == g.n || now.Sub(g.at(i).at) <= g.ttl
}

// firstOffset is the offset of the oldest record kept, or ifEmpty.
func (g *ring) firstOffset(ifEmpty uint64) uint64 {
	if g.n == 0 {
		return ifEmpty
	}
	return g.at(0).pos.Offset
}
