package relay

import "time"

// Why history records are evicted (the relay_history_evictions_total reasons).
const (
	evictCount = iota // more records than the history's size
	evictBytes        // more bytes than its byte budget
	evictAge          // older than its TTL
	evictGap          // the log jumped (new epoch, or records history could not fill): older ones cannot be resumed
	numEvictReasons
)

var evictReasons = [numEvictReasons]string{"count", "bytes", "age", "gap"}

// ring is the node's copy of the recent log: every record the broker delivered, contiguous by offset within one
// epoch, bounded by count, bytes and age. It serves almost every resume without a broker round trip (every node
// sees every record, so a client moving between nodes finds the same offsets). Guarded by the Hub's mutex.
//
// The byte budget is what keeps one user's large events (1 MB of metadata each, within the rate limit) from
// pinning gigabytes for the TTL: whatever the count, the ring holds at most maxBytes of records.
type ring struct {
	buf      []*record
	start    int // index of the oldest
	n        int
	ttl      time.Duration
	maxBytes int64
	bytes    int64 // sum of the records' size
	evicted  [numEvictReasons]uint64
}

func newRing(size int, ttl time.Duration, maxBytes int64) *ring {
	return &ring{buf: make([]*record, size), ttl: ttl, maxBytes: maxBytes}
}

func (g *ring) at(i int) *record { return g.buf[(g.start+i)%len(g.buf)] }

func (g *ring) reset(why int) {
	g.evicted[why] += uint64(g.n)
	clear(g.buf)
	g.start, g.n, g.bytes = 0, 0, 0
}

func (g *ring) dropOldest(why int) {
	g.bytes -= g.buf[g.start].size
	g.buf[g.start] = nil
	g.start = (g.start + 1) % len(g.buf)
	g.n--
	g.evicted[why]++
}

// add appends r, restarting the ring when r does not directly follow the newest record, and evicts the oldest
// records beyond the ring's size, age (at now) and byte budget. A record larger than the whole budget empties
// the ring and is not kept (resumes across it are then served by the broker, or told to reload).
func (g *ring) add(r *record, now time.Time) {
	if g.n > 0 {
		last := g.at(g.n - 1)
		if last.pos.Epoch != r.pos.Epoch || last.pos.Offset+1 != r.pos.Offset {
			g.reset(evictGap)
		}
	}
	for g.n > 0 && now.Sub(g.at(0).at) > g.ttl {
		g.dropOldest(evictAge)
	}
	if r.size > g.maxBytes {
		g.reset(evictBytes)
		g.evicted[evictBytes]++
		return
	}
	if g.n == len(g.buf) {
		g.dropOldest(evictCount)
	}
	for g.n > 0 && g.bytes+r.size > g.maxBytes {
		g.dropOldest(evictBytes)
	}
	g.buf[(g.start+g.n)%len(g.buf)] = r
	g.n++
	g.bytes += r.size
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
