package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// MessageLimits bound what one chat message may carry on the send routes (messages/send, chat/messages POST),
// beyond the 1 MiB body limit. The body limit alone let one user store ~1 MB of metadata per message, which every
// NEW_MESSAGE event carries to the room and the replay history keeps: 400 such sends held over a gigabyte. Zero
// fields take the defaults.
type MessageLimits struct {
	// MetadataMaxBytes bounds the metadata object (compact JSON). The browser sends at most {"isAsciiArt":true}.
	MetadataMaxBytes int
	// MaxRecipients bounds the per-recipient copies of one send; it must be at least the largest conversation
	// (copies for users who are not active participants are dropped anyway).
	MaxRecipients int
	// CiphertextMaxBytes bounds one recipient's encrypted content (the UTF-8 bytes of the JSON string).
	CiphertextMaxBytes int
}

// Defaults of MessageLimits. A browser copy is ML-KEM-1024 JSON: 2,092 characters of KEM ciphertext and ~200 of
// envelope, plus 4/3 of the message's bytes, so 64 KiB holds a message of ~46 KB; the 1 MiB body limit is reached
// long before 1,000 recipients (a short message to a 201-member room is ~490 KB).
const (
	DefaultMessageMetadataMaxBytes   = 8 << 10
	DefaultMessageMaxRecipients      = 1000
	DefaultMessageCiphertextMaxBytes = 64 << 10
)

// withDefaults fills the zero (or negative) fields with the defaults.
func (l MessageLimits) withDefaults() MessageLimits {
	if l.MetadataMaxBytes <= 0 {
		l.MetadataMaxBytes = DefaultMessageMetadataMaxBytes
	}
	if l.MaxRecipients <= 0 {
		l.MaxRecipients = DefaultMessageMaxRecipients
	}
	if l.CiphertextMaxBytes <= 0 {
		l.CiphertextMaxBytes = DefaultMessageCiphertextMaxBytes
	}
	return l
}

// contentsProblem is what is wrong with a send's per-recipient contents.
type contentsProblem int

const (
	contentsOK        contentsProblem = iota
	contentsMalformed                 // not a non-empty object of UUID → string (400)
	contentsTooMany                   // more than MaxRecipients entries (413)
	contentsTooLarge                  // an entry over CiphertextMaxBytes (413)
)

// recipientContents validates the per-recipient contents of a send — a non-empty object of at most MaxRecipients
// internal ids (UUIDs) mapping to strings of at most CiphertextMaxBytes, the encrypted JSON of each copy. A
// malformed entry is reported before an oversized one, whatever the order of the entries.
//
// It takes the value as the request's one decode produced it (any): decoding the ~0.5 MB of a send into a
// json.RawMessage and then again into a map cost twice the JSON work (BenchmarkSendDecode).
func (l MessageLimits) recipientContents(v any) (map[string]string, contentsProblem) {
	contents, isObj := v.(map[string]any)
	if !isObj || len(contents) == 0 {
		return nil, contentsMalformed
	}
	if len(contents) > l.MaxRecipients {
		return nil, contentsTooMany
	}
	out := make(map[string]string, len(contents))
	tooLarge := false
	for k, v := range contents {
		text, isStr := v.(string)
		if !isStr || !isUUID(k) {
			return nil, contentsMalformed
		}
		tooLarge = tooLarge || len(text) > l.CiphertextMaxBytes
		out[k] = text
	}
	if tooLarge {
		return nil, contentsTooLarge
	}
	return out, contentsOK
}

// contentsAnswered answers a contents problem with the route's texts (field is the route's name of the contents
// field, malformed its 400 text); it returns false when there is none.
func (l MessageLimits) contentsAnswered(w http.ResponseWriter, p contentsProblem, field, malformed string) bool {
	switch p {
	case contentsOK:
		return false
	case contentsTooMany:
		writeError(w, http.StatusRequestEntityTooLarge, field+" must map at most "+strconv.Itoa(l.MaxRecipients)+" recipients")
	case contentsTooLarge:
		writeError(w, http.StatusRequestEntityTooLarge,
			field+" values must be at most "+strconv.Itoa(l.CiphertextMaxBytes)+" bytes each")
	default:
		writeError(w, http.StatusBadRequest, malformed)
	}
	return true
}

// metadataTooLarge reports whether a metadata object (valid JSON) is over MetadataMaxBytes once compacted, so that
// the limit does not depend on how the client formats it.
func (l MessageLimits) metadataTooLarge(raw json.RawMessage) bool {
	if len(raw) <= l.MetadataMaxBytes {
		return false
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return true
	}
	return buf.Len() > l.MetadataMaxBytes
}

// isJSONObject reports whether a value of a decoded body (valid JSON, so no second parse is needed) is an object.
// Decoding ~1 MB of metadata into a map only to learn that was most of the cost of refusing it.
func isJSONObject(raw json.RawMessage) bool {
	v := bytes.TrimSpace(raw)
	return len(v) > 0 && v[0] == '{'
}
