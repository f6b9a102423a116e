package supa

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"
)

// Rows and queries of chat messages (routes.md §6.2, §6.3, §7.5, §7.6): messages with their per-recipient copies
// (message_recipients) and deliveries. All of them run under the caller's token (Rest), so row-level security
// applies on top of the handlers' own checks.
//
// The stored form of a recipient's copy is base64 of the UTF-8 bytes of the encrypted JSON string the browser sent
// (as the original stored it); these methods take and give the browser's strings and keep that encoding here.

// Message is one messages row as PostgREST returns it, column by column, with the caller's own copy in
// encrypted_content: the routes pass rows through unchanged, so the columns stay raw.
type Message map[string]json.RawMessage

// ConversationID is the conversation the message belongs to ("" when the row has none).
func (m Message) ConversationID() string {
	var id string
	_ = json.Unmarshal(m["conversation_id"], &id)
	return id
}

// NewMessage is a message to send. Contents maps recipient internal ids (validated by the caller) to the encrypted
// JSON strings as the browser sent them. Zero MessageType and ContentType mean "text"; nil Metadata means {}.
//
// ID and NotAfter make an unheard outcome resolvable (ResolveSend): the message gets ID (a UUID the server
// picked) and the database refuses to commit it after NotAfter (ErrSendDeadlinePassed). Both zero: the database
// picks the id and there is no deadline.
type NewMessage struct {
	ID             string
	NotAfter       time.Time
	ConversationID string
	Contents       map[string]string
	MessageType    string
	Metadata       json.RawMessage
	ReplyToID      *string
	ContentType    string
	HasAttachments bool
}

// SentMessage is what SendMessage stored: the message row with its sender embedded, raw (NEW_MESSAGE carries it
// unchanged), and the conversation's active participants — the audience of NEW_MESSAGE.
type SentMessage struct {
	Message      json.RawMessage `json:"message"`
	Participants []string        `json:"participants"`
}

// Retries of a send the database rolled back for a lock conflict (txRolledBack).
const (
	sendRetries      = 2                     // at most this many calls after the first
	sendRetryMinWait = 10 * time.Millisecond // the pause before each retry is drawn from [min, max]
	sendRetryMaxWait = 50 * time.Millisecond
)

// SendMessage stores one message with its per-recipient copies and deliveries in one atomic RPC
// (api_send_message). Copies for users who are not active participants are dropped by the database. Refusals:
// ErrNotParticipant (the caller is not an active participant), ErrNoRecipients (no copy is for an active
// participant), ErrReplyNotInConversation, ErrSendDeadlinePassed (m.NotAfter passed before the commit: nothing
// is stored).
//
// A send the database chose as a deadlock victim (40P01) or failed for serialization (40001) is retried, at most
// sendRetries times, after a pause of 10–50 ms (jittered, so that two sends caught in one conflict do not meet again
// in lockstep). The send's own locks never conflict with each other (KEY SHARE row locks for its foreign keys, an
// advisory lock per message id), so such a conflict comes from another workload on the same rows — a bulk deletion
// of users, say — and is over quickly. Retrying is safe: the whole transaction was rolled back, nothing of it is
// stored, and the retry uses the same m.ID. No retry is started once m.NotAfter has passed (the database would
// refuse to commit it) or when the pause would reach ctx's deadline; the last error is returned then, and it is a
// definite failure (OutcomeUnknown is false for it).
func (r Rest) SendMessage(ctx context.Context, m NewMessage) (SentMessage, error) {
	args, err := sendBody(m)
	if err != nil {
		return SentMessage{}, &Error{Op: "rpc api_send_message", Err: err}
	}
	for retry := 0; ; retry++ {
		var sent SentMessage
		err := r.RPC(ctx, "api_send_message", args, &sent)
		if err == nil {
			return sent, nil
		}
		if retry == sendRetries || !txRolledBack(err) || !pauseBeforeRetry(ctx, m.NotAfter) {
			return SentMessage{}, err
		}
	}
}

// sendBody renders api_send_message's arguments. The copies are nearly all of a send's bytes (~0.65 MB into a
// 201-member room): they go straight into one buffer of their size — keys JSON-quoted, values base64, which needs
// no escaping — instead of through json.Marshal's sort and per-byte escape scan of a map (BenchmarkSendBody).
func sendBody(m NewMessage) (json.RawMessage, error) {
	msgType, contentType, metadata := m.MessageType, m.ContentType, m.Metadata
	if msgType == "" {
		msgType = "text"
	}
	if contentType == "" {
		contentType = "text"
	}
	if len(metadata) == 0 {
		metadata = json.RawMessage(`{}`)
	}
	args := map[string]any{
		"p_conversation_id": m.ConversationID, "p_message_type": msgType, "p_metadata": metadata,
		"p_reply_to_id": m.ReplyToID, "p_content_type": contentType, "p_has_attachments": m.HasAttachments,
	}
	if m.ID != "" {
		args["p_message_id"] = m.ID
	}
	if !m.NotAfter.IsZero() {
		args["p_not_after"] = m.NotAfter.UTC().Format(time.RFC3339Nano)
	}
	head, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	size := len(head) + 32
	for id, text := range m.Contents {
		size += len(id) + base64.StdEncoding.EncodedLen(len(text)) + 8
	}
	out := make([]byte, 0, size)
	out = append(out, head[:len(head)-1]...) // the object without its closing brace
	out = append(out, `,"p_encrypted_contents":{`...)
	first := true
	for id, text := range m.Contents {
		key, err := json.Marshal(id)
		if err != nil {
			return nil, err
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, key...)
		out = append(out, ':', '"')
		out = base64.StdEncoding.AppendEncode(out, []byte(text))
		out = append(out, '"')
	}
	return append(out, "}}"...), nil
}

// pauseBeforeRetry waits a jittered sendRetryMinWait–sendRetryMaxWait and reports whether a retry may follow: not
// when notAfter (if set) has passed or would pass during the pause, nor when ctx ends or its deadline would pass
// first.
func pauseBeforeRetry(ctx context.Context, notAfter time.Time) bool {
	wait := sendRetryMinWait + rand.N(sendRetryMaxWait-sendRetryMinWait+1)
	resume := time.Now().Add(wait)
	if !notAfter.IsZero() && !resume.Before(notAfter) {
		return false
	}
	if d, ok := ctx.Deadline(); ok && !resume.Before(d) {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ResolveSend settles a SendMessage whose answer never arrived (a timeout, a broken connection): the database
// waits until notAfter has passed and no transaction still holds the send, then says whether the message with id
// (sent by the caller) is stored. found: sent is what SendMessage would have answered (with the current
// participants); !found: it is not stored and never will be. An error leaves the outcome unknown; the call may be
// repeated.
func (r Rest) ResolveSend(ctx context.Context, id string, notAfter time.Time) (sent SentMessage, found bool, err error) {
	var raw json.RawMessage
	err = r.RPC(ctx, "api_resolve_send", map[string]any{
		"p_message_id": id, "p_not_after": notAfter.UTC().Format(time.RFC3339Nano)}, &raw)
	if err != nil {
		return SentMessage{}, false, err
	}
	if len(raw) == 0 || string(raw) == "null" {
		return SentMessage{}, false, nil
	}
	if err := json.Unmarshal(raw, &sent); err != nil || len(sent.Message) == 0 {
		return SentMessage{}, false, &Error{Op: "rpc api_resolve_send", Status: 200, Message: "undecodable answer", Err: err}
	}
	return sent, true, nil
}

// ownCopy turns the caller's recipient copy (the stored base64 of the UTF-8 encrypted JSON) back into that JSON
// string; an undecodable copy is passed on as stored, and without a copy the row's own column is kept, as the
// original did.
func ownCopy(recipients, fallback json.RawMessage) json.RawMessage {
	var copies []struct {
		EncryptedContent string `json:"encrypted_content"`
	}
	if json.Unmarshal(recipients, &copies) != nil || len(copies) == 0 {
		return fallback
	}
	c := copies[0].EncryptedContent
	if dec, err := base64.StdEncoding.DecodeString(c); err == nil && utf8.Valid(dec) {
		c = string(dec)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fallback
	}
	return b
}

// withOwnCopy replaces the row's encrypted_content by the caller's copy and drops the embedded copies.
func withOwnCopy(m Message) Message {
	m["encrypted_content"] = ownCopy(m["message_recipients"], m["encrypted_content"])
	delete(m, "message_recipients")
	return m
}

// MessagePage asks for the newest messages of a conversation that have a copy for RecipientID (internal id),
// created before Before (RFC 3339, UTC; "" = no bound), at most Limit of them.
type MessagePage struct {
	ConversationID string
	RecipientID    string
	Limit          int
	Before         string
}

// loadColumns are the columns of messages/load: the row, its sender and the caller's copy (the inner embed leaves
// out messages without one).
const loadColumns = "id,conversation_id,sender_id,reply_to_id,message_type,encrypted_content,content_hash,metadata," +
	"edited_at,deleted_at,created_at,expires_at,content_type,has_attachments," +
	"sender:users!messages_sender_id_fkey(id,username,display_name,avatar_url)," +
	"message_recipients!inner(encrypted_content)"

// LatestMessages returns the page's undeleted messages oldest first, each with the recipient's own copy in
// encrypted_content; never nil.
func (r Rest) LatestMessages(ctx context.Context, p MessagePage) ([]Message, error) {
	q := Q("select", loadColumns, "conversation_id", "eq."+p.ConversationID, "deleted_at", "is.null",
		"message_recipients.recipient_user_id", "eq."+p.RecipientID,
		"order", "created_at.desc,id.desc", "limit", strconv.Itoa(p.Limit))
	if p.Before != "" {
		q.Set("created_at", "lt."+p.Before)
	}
	var rows []Message
	if err := r.Select(ctx, "messages", q, &rows); err != nil {
		return nil, err
	}
	out := make([]Message, len(rows))
	for i, m := range rows {
		out[len(rows)-1-i] = withOwnCopy(m)
	}
	return out, nil
}

// MessageForRecipient reads one undeleted message with its sender and the copy of recipientID (internal id) in
// encrypted_content; nil when there is none the caller may see.
func (r Rest) MessageForRecipient(ctx context.Context, messageID, recipientID string) (Message, error) {
	var rows []Message
	err := r.Select(ctx, "messages", Q(
		"select", "*,sender:users!messages_sender_id_fkey(id,username,display_name,avatar_url),message_recipients(encrypted_content,recipient_user_id)",
		"id", "eq."+messageID, "deleted_at", "is.null", "message_recipients.recipient_user_id", "eq."+recipientID,
		"limit", "1"), &rows)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return withOwnCopy(rows[0]), nil
}

// DeliveredMessage is one message of a recipient's delivery list (routes.md §7.5): the message, the recipient's
// own copy in EncryptedContent, their delivery and the expiry state of their copy (nil when absent).
type DeliveredMessage struct {
	ID               string
	ConversationID   string
	SenderID         string
	ContentType      string
	HasAttachments   bool
	CreatedAt        string
	ReplyToID        *string
	EncryptedContent json.RawMessage
	Delivery         *Delivery
	Copy             *CopyState
}

// Delivery is the recipient's deliveries row of a message.
type Delivery struct {
	DeliveredTS *string `json:"delivered_ts"`
	ReadTS      *string `json:"read_ts"`
	ExpiresAt   *string `json:"expires_at"`
}

// CopyState is the expiry state of the recipient's copy of a message.
type CopyState struct {
	ExpiresAt *string `json:"expires_at"`
	StartOn   *string `json:"start_on"`
	ReadAt    *string `json:"read_at"`
}

// DeliveryPage asks for the messages of a conversation delivered to RecipientID (internal id) and not deleted for
// them, whose copy has not expired at Now, oldest first, Limit of them after skipping Offset.
type DeliveryPage struct {
	ConversationID string
	RecipientID    string
	Limit, Offset  int
	Now            time.Time
}

// deliveredRow is the PostgREST answer behind a DeliveredMessage.
type deliveredRow struct {
	ID             string          `json:"id"`
	ConversationID string          `json:"conversation_id"`
	SenderID       string          `json:"sender_id"`
	ContentType    string          `json:"content_type"`
	HasAttachments bool            `json:"has_attachments"`
	CreatedAt      string          `json:"created_at"`
	ReplyToID      *string         `json:"reply_to_id"`
	EncContent     json.RawMessage `json:"encrypted_content"`
	Deliveries     []Delivery      `json:"deliveries"`
	Copies         json.RawMessage `json:"message_recipients"`
}

// DeliveredMessages lists a page of the recipient's delivered messages (chat/messages GET); never nil.
func (r Rest) DeliveredMessages(ctx context.Context, p DeliveryPage) ([]DeliveredMessage, error) {
	now := p.Now.UTC().Format(time.RFC3339Nano)
	var rows []deliveredRow
	err := r.Select(ctx, "messages", Q(
		"select", "id,conversation_id,sender_id,content_type,has_attachments,created_at,reply_to_id,encrypted_content,"+
			"deliveries!inner(delivered_ts,read_ts,expires_at),"+
			"message_recipients!inner(encrypted_content,expires_at,start_on,read_at)",
		"conversation_id", "eq."+p.ConversationID, "deleted_at", "is.null",
		"deliveries.recipient_user_id", "eq."+p.RecipientID, "deliveries.deleted_ts", "is.null",
		"message_recipients.recipient_user_id", "eq."+p.RecipientID,
		"message_recipients.or", "(expires_at.is.null,expires_at.gt."+now+")",
		"order", "created_at.asc,id.asc", "limit", strconv.Itoa(p.Limit), "offset", strconv.Itoa(p.Offset)), &rows)
	if err != nil {
		return nil, err
	}
	out := make([]DeliveredMessage, 0, len(rows))
	for _, row := range rows {
		m := DeliveredMessage{ID: row.ID, ConversationID: row.ConversationID, SenderID: row.SenderID,
			ContentType: row.ContentType, HasAttachments: row.HasAttachments, CreatedAt: row.CreatedAt,
			ReplyToID: row.ReplyToID, EncryptedContent: ownCopy(row.Copies, row.EncContent)}
		if len(row.Deliveries) > 0 {
			m.Delivery = &row.Deliveries[0]
		}
		var copies []CopyState
		if json.Unmarshal(row.Copies, &copies) == nil && len(copies) > 0 {
			m.Copy = &copies[0]
		}
		out = append(out, m)
	}
	return out, nil
}

// MarkMessageRead marks one message read for userID (the caller's internal id), through fn_mark_message_read.
func (r Rest) MarkMessageRead(ctx context.Context, messageID, userID string) error {
	return r.RPC(ctx, "fn_mark_message_read", map[string]any{"p_message_id": messageID, "p_user_id": userID}, nil)
}
