package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Event is what handlers publish. Type is the SSE event name (also the envelope's "type"); Data is the payload,
// the envelope's "data", already JSON.
type Event struct {
	Type string
	Data json.RawMessage
}

// Event names of the contract (sse.md §3) and the additive ones this relay defines (ignored by the frontend).
const (
	TypeConnected           = "CONNECTED"
	TypeNewMessage          = "NEW_MESSAGE"
	TypeUserTyping          = "USER_TYPING"
	TypeConversationCreated = "CONVERSATION_CREATED"
	TypeMessageRead         = "MESSAGE_READ"
	TypeUserOnline          = "USER_ONLINE"
	TypeUserOffline         = "USER_OFFLINE"
)

// ErrInvalidEvent is returned for an event whose type is not a plain token or whose data is not JSON.
var ErrInvalidEvent = errors.New("relay: invalid event")

// PublishOptions narrows or widens a room broadcast.
type PublishOptions struct {
	// ExcludeUser's streams do not receive the event (typing: not echoed to the sender).
	ExcludeUser string
	// Participants, when non-nil, are the conversation's active participants: room members not listed do not
	// receive (sse.md §5.4, "still active"), and, unless MembersOnly, listed users receive even if they have not
	// joined the room (NEW_MESSAGE, CONVERSATION_CREATED).
	Participants []string
	// MembersOnly makes Participants a filter only (USER_TYPING: only joined members, and only active ones).
	MembersOnly bool
}

// validType accepts the characters event names are made of; anything else could break the frame or the JSON
// envelope (control characters, quotes, backslashes, spaces, colons).
func validType(t string) bool {
	if t == "" || len(t) > 64 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// normalize checks ev and returns its data as compact single-line JSON.
func (ev Event) normalize() (json.RawMessage, error) {
	if !validType(ev.Type) {
		return nil, fmt.Errorf("%w: type %q", ErrInvalidEvent, ev.Type)
	}
	data := ev.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%w: data of %s is not JSON", ErrInvalidEvent, ev.Type)
	}
	if bytes.ContainsAny(data, "\r\n") { // raw newlines can only be whitespace between tokens: compact them away
		var buf bytes.Buffer
		if err := json.Compact(&buf, data); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
		}
		data = buf.Bytes()
	}
	return data, nil
}

// mustJSON marshals without HTML escaping, so rows pass through byte for byte as PostgREST returned them.
func mustJSON(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // only with an invalid RawMessage argument: Publish then rejects it
		return json.RawMessage("!invalid")
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// NewMessageEvent is NEW_MESSAGE with the full inserted messages row (sse.md §3):
// {"message":<row>,"shouldReloadMessages":true}.
func NewMessageEvent(message json.RawMessage) Event {
	return Event{Type: TypeNewMessage, Data: mustJSON(struct {
		Message              json.RawMessage `json:"message"`
		ShouldReloadMessages bool            `json:"shouldReloadMessages"`
	}{message, true})}
}

// NewMessageShortEvent is NEW_MESSAGE as files/upload-complete sends it:
// {"message":{"id","conversation_id","has_attachments":true},"shouldReloadMessages":true}.
func NewMessageShortEvent(messageID, conversationID string) Event {
	type short struct {
		ID             string `json:"id"`
		ConversationID string `json:"conversation_id"`
		HasAttachments bool   `json:"has_attachments"`
	}
	return NewMessageEvent(mustJSON(short{messageID, conversationID, true}))
}

// TypingStartEvent is USER_TYPING with isTyping true.
func TypingStartEvent(userID, username, displayName, conversationID string) Event {
	return Event{Type: TypeUserTyping, Data: mustJSON(struct {
		UserID         string `json:"userId"`
		Username       string `json:"username"`
		DisplayName    string `json:"displayName"`
		ConversationID string `json:"conversationId"`
		IsTyping       bool   `json:"isTyping"`
	}{userID, username, displayName, conversationID, true})}
}

// TypingStopEvent is USER_TYPING with isTyping false.
func TypingStopEvent(userID, conversationID string) Event {
	return Event{Type: TypeUserTyping, Data: mustJSON(struct {
		UserID         string `json:"userId"`
		ConversationID string `json:"conversationId"`
		IsTyping       bool   `json:"isTyping"`
	}{userID, conversationID, false})}
}

// ConversationCreatedEvent is CONVERSATION_CREATED with the conversations row: {"conversation":<row>}.
func ConversationCreatedEvent(conversation json.RawMessage) Event {
	return Event{Type: TypeConversationCreated, Data: mustJSON(struct {
		Conversation json.RawMessage `json:"conversation"`
	}{conversation})}
}

// MessageReadEvent (additive) tells a room that userID has read up to messageID.
func MessageReadEvent(userID, conversationID, messageID string) Event {
	return Event{Type: TypeMessageRead, Data: mustJSON(struct {
		UserID         string `json:"userId"`
		ConversationID string `json:"conversationId"`
		MessageID      string `json:"messageId"`
	}{userID, conversationID, messageID})}
}

// PresenceEvent (additive) is USER_ONLINE or USER_OFFLINE for userID.
func PresenceEvent(userID string, online bool) Event {
	t := TypeUserOffline
	if online {
		t = TypeUserOnline
	}
	return Event{Type: t, Data: mustJSON(struct {
		UserID string `json:"userId"`
	}{userID})}
}

// connectedData is CONNECTED's payload: {"userId":"<internal id>","timestamp":"<ISO>"}.
func connectedData(userID, timestamp string) json.RawMessage {
	return mustJSON(struct {
		UserID    string `json:"userId"`
		Timestamp string `json:"timestamp"`
	}{userID, timestamp})
}
