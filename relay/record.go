package relay

import (
	"encoding/json"
	"fmt"
	"time"
)

// record is a decoded log record: an event plus its audience. Its frame is pre-built in two halves around the
// timestamp, which is the only per-delivery part (the contract formats it once per receiving user).
type record struct {
	kind        byte // 'r' room broadcast, 'u' one user
	room        string
	user        string
	exclude     string
	parts       []string
	partSet     map[string]struct{}
	membersOnly bool
	typ         string

	pos   Position
	at    time.Time // publish time
	local bool      // delivered without the broker (it was down): not in any history, never deduplicated
	head  []byte    // "event: T\ndata: {\"type\":\"T\",\"timestamp\":\""
	tail  []byte    // "\",\"data\":<payload>}\nid: <id>\n\n"
}

// wireRecord is a record as it travels through the broker.
type wireRecord struct {
	K string          `json:"k"`
	R string          `json:"r,omitempty"`
	U string          `json:"u,omitempty"`
	X string          `json:"x,omitempty"`
	P []string        `json:"p"` // null = no participant list; [] = nobody is active
	M bool            `json:"m,omitempty"`
	T string          `json:"t"`
	D json.RawMessage `json:"d"`
}

func encodeRecord(w wireRecord) ([]byte, error) { return json.Marshal(w) }

// decodeRecord turns broker bytes into a record positioned at pos.
func decodeRecord(data []byte, pos Position, at time.Time) (*record, error) {
	var w wireRecord
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, err
	}
	if (w.K != "r" && w.K != "u") || !validType(w.T) {
		return nil, fmt.Errorf("relay: bad record kind %q or type %q", w.K, w.T)
	}
	return newRecord(w, pos, at), nil
}

func newRecord(w wireRecord, pos Position, at time.Time) *record {
	r := &record{kind: w.K[0], room: w.R, user: w.U, exclude: w.X, parts: w.P, membersOnly: w.M, typ: w.T,
		pos: pos, at: at}
	if len(w.P) > 8 {
		r.partSet = make(map[string]struct{}, len(w.P))
		for _, p := range w.P {
			r.partSet[p] = struct{}{}
		}
	}
	r.head = frameHead(w.T)
	r.tail = frameTail(w.D, formatID(pos), 0)
	return r
}

// participant reports whether user is in the participant list (false when there is none).
func (r *record) participant(user string) bool {
	if r.partSet != nil {
		_, ok := r.partSet[user]
		return ok
	}
	for _, p := range r.parts {
		if p == user {
			return true
		}
	}
	return false
}

// addressedTo decides whether the record goes to user, given the user's join offset for the record's room
// (ok=false when not a member). Fan-out and replay both use it, so live delivery and resume agree.
func (r *record) addressedTo(user string, joinOff uint64, member bool) bool {
	if r.kind == 'u' {
		return r.user == user
	}
	if r.kind != 'r' || user == r.exclude {
		return false
	}
	member = member && (r.local || joinOff < r.pos.Offset)
	if r.parts == nil {
		return member
	}
	in := r.participant(user)
	return in && (member || !r.membersOnly)
}
