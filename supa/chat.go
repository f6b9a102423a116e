package supa

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Rows and queries of the chat tables: conversations, conversation_participants, messages, message_recipients,
// deliveries. All of them run under the caller's token (Rest), so row-level security applies on top of the
// handlers' own checks.

// ParticipantRow is one conversation_participants row.
type ParticipantRow struct {
	ID               string     `json:"id"`
	ConversationID   string     `json:"conversation_id"`
	UserID           string     `json:"user_id"`
	Role             string     `json:"role"`
	JoinedAt         *time.Time `json:"joined_at"`
	LeftAt           *time.Time `json:"left_at"`
	ArchivedAt       *time.Time `json:"archived_at"`
	DisappearSeconds int        `json:"disappear_seconds"`
	StartOn          string     `json:"start_on"`
}

// Participant returns the caller's (or any visible user's) participant row of a conversation; nil when none.
func (r Rest) Participant(ctx context.Context, conversationID, userID string) (*ParticipantRow, error) {
	var rows []ParticipantRow
	err := r.Select(ctx, "conversation_participants", Q(
		"select", "id,conversation_id,user_id,role,joined_at,left_at,archived_at,disappear_seconds,start_on",
		"conversation_id", "eq."+conversationID, "user_id", "eq."+userID, "limit", "1"), &rows)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

// IsActiveParticipant reports whether userID has a participant row with left_at null in the conversation.
func (r Rest) IsActiveParticipant(ctx context.Context, conversationID, userID string) (bool, error) {
	p, err := r.Participant(ctx, conversationID, userID)
	return err == nil && p != nil && p.LeftAt == nil, err
}

// ActiveParticipantIDs lists the internal ids of the conversation's active participants.
func (r Rest) ActiveParticipantIDs(ctx context.Context, conversationID string) ([]string, error) {
	var rows []struct {
		UserID string `json:"user_id"`
	}
	err := r.Select(ctx, "conversation_participants", Q("select", "user_id",
		"conversation_id", "eq."+conversationID, "left_at", "is.null"), &rows)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(rows))
	for i, row := range rows {
		ids[i] = row.UserID
	}
	return ids, nil
}

// ConversationRow is one conversations row, kept raw too so events can carry it unchanged.
type ConversationRow struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Name      *string         `json:"name"`
	CreatedBy *string         `json:"created_by"`
	GroupID   *string         `json:"group_id"`
	AvatarURL *string         `json:"avatar_url"`
	Raw       json.RawMessage `json:"-"`
}

// Conversation reads one conversation; KindNotFound when it does not exist or is not visible.
func (r Rest) Conversation(ctx context.Context, id string) (ConversationRow, error) {
	var raw json.RawMessage
	if err := r.SelectOne(ctx, "conversations", Q("select", "*", "id", "eq."+id), &raw); err != nil {
		return ConversationRow{}, err
	}
	var c ConversationRow
	if err := json.Unmarshal(raw, &c); err != nil {
		return ConversationRow{}, &Error{Op: "select conversations", Status: http.StatusBadGateway, Err: err}
	}
	c.Raw = raw
	return c, nil
}

// ConversationSummary is one row of get_user_conversations_enhanced.
type ConversationSummary struct {
	ConversationID              string          `json:"conversation_id"`
	ConversationName            *string         `json:"conversation_name"`
	ConversationType            string          `json:"conversation_type"`
	LastMessageEncryptedContent json.RawMessage `json:"last_message_encrypted_content"`
	LastMessageSenderUsername   *string         `json:"last_message_sender_username"`
	LastMessageAt               *string         `json:"last_message_at"`
	UnreadCount                 int64           `json:"unread_count"`
}

// ConversationSummaries lists the conversations of userID (internal id) newest first, with unread counts.
func (r Rest) ConversationSummaries(ctx context.Context, userID string) ([]ConversationSummary, error) {
	var rows []ConversationSummary
	err := r.RPC(ctx, "get_user_conversations_enhanced", map[string]any{"user_uuid": userID}, &rows)
	return rows, err
}

// MemberRow is a participant row with the member's username, for conversation lists.
type MemberRow struct {
	ConversationID string     `json:"conversation_id"`
	UserID         string     `json:"user_id"`
	ArchivedAt     *time.Time `json:"archived_at"`
	LeftAt         *time.Time `json:"left_at"`
	User           *struct {
		Username string `json:"username"`
	} `json:"users"`
}

// MembersOf lists every participant row (left ones included) of the given conversations with usernames.
func (r Rest) MembersOf(ctx context.Context, conversationIDs []string) ([]MemberRow, error) {
	var all []MemberRow
	for start := 0; start < len(conversationIDs); start += 100 {
		end := min(start+100, len(conversationIDs))
		var rows []MemberRow
		err := r.Select(ctx, "conversation_participants", Q(
			"select", "conversation_id,user_id,archived_at,left_at,users!conversation_participants_user_id_fkey(username)",
			"conversation_id", In(conversationIDs[start:end]), "order", "joined_at.asc"), &rows)
		if err != nil {
			return nil, err
		}
		all = append(all, rows...)
	}
	return all, nil
}

// ConversationsByID reads conversations rows by id (visible ones only).
func (r Rest) ConversationsByID(ctx context.Context, ids []string) ([]ConversationRow, error) {
	var all []ConversationRow
	for start := 0; start < len(ids); start += 100 {
		end := min(start+100, len(ids))
		var rows []ConversationRow
		if err := r.Select(ctx, "conversations", Q("select", "id,type,name,created_by,group_id,avatar_url",
			"id", In(ids[start:end])), &rows); err != nil {
			return nil, err
		}
		all = append(all, rows...)
	}
	return all, nil
}
