package supa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Rows and queries of conversations and their members (routes.md §6.4–6.8, §7.1–7.3): the conversations and
// conversation_participants tables and the RPCs that change them. All of them run under the caller's token (Rest),
// so row-level security applies on top of the handlers' own checks; the RPCs identify the caller by the token too,
// never by an argument.

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

// ParticipantProfile is the public profile of a participant, as the participants list embeds it.
type ParticipantProfile struct {
	ID          string  `json:"id"`
	Username    *string `json:"username"`
	DisplayName *string `json:"display_name"`
	AvatarURL   *string `json:"avatar_url"`
}

// ActiveParticipant is one active member of a conversation with their profile. The field order is the wire order
// of GET /api/chat/conversations/{id}/participants (routes.md §7.3); JoinedAt stays PostgREST's text.
type ActiveParticipant struct {
	UserID   string              `json:"user_id"`
	Role     *string             `json:"role"`
	JoinedAt *string             `json:"joined_at"`
	User     *ParticipantProfile `json:"user"`
}

// ActiveParticipants lists the active members of a conversation with their profiles, earliest joined first; never
// nil. Row-level security shows them only to the conversation's participants (and its creator).
func (r Rest) ActiveParticipants(ctx context.Context, conversationID string) ([]ActiveParticipant, error) {
	rows := []ActiveParticipant{}
	err := r.Select(ctx, "conversation_participants", Q(
		"select", "user_id,role,joined_at,user:users!conversation_participants_user_id_fkey(id,username,display_name,avatar_url)",
		"conversation_id", "eq."+conversationID, "left_at", "is.null", "order", "joined_at.asc"), &rows)
	return rows, err
}

// NewConversation is a conversation to create: its type (direct, group, room or note_to_self, validated by the
// caller), optional name and group, and the internal ids of the other participants (the caller's own id among
// them is ignored; the caller always becomes the admin).
type NewConversation struct {
	Type           string
	Name           *string
	GroupID        *string
	ParticipantIDs []string
}

// CreatedConversation is what CreateConversation did: the conversation's row, and whether it existed already (a
// direct chat of exactly the caller and the one other participant).
type CreatedConversation struct {
	Conversation ConversationRow
	Existed      bool
}

// ErrParticipantsNotAdded means the conversation could not be created because its participants could not be
// added; nothing was stored. The underlying *Error keeps the insert's status and code.
var ErrParticipantsNotAdded = errors.New("supa: the participants could not be added")

// CreateConversation creates a conversation with the caller as admin and the others as members, or returns the
// existing direct chat between the caller and the single other participant — atomically, in one RPC
// (supabase/migrations/*_api_create_conversation.sql). Refusals: ErrInvalidUserIDs (an id names no user),
// ErrNotGroupMember (GroupID is not a group the caller is an active member of), ErrParticipantsNotAdded.
func (r Rest) CreateConversation(ctx context.Context, c NewConversation) (CreatedConversation, error) {
	var out struct {
		Conversation json.RawMessage `json:"conversation"`
		Existed      bool            `json:"existed"`
	}
	err := r.RPC(ctx, "api_create_conversation", map[string]any{"p_type": c.Type, "p_participant_ids": c.ParticipantIDs,
		"p_name": c.Name, "p_group_id": c.GroupID}, &out)
	var e *Error
	if errors.As(err, &e) && e.Status != 0 && e.Message == "participants_not_added" {
		return CreatedConversation{}, fmt.Errorf("%w: %w", ErrParticipantsNotAdded, err)
	}
	if err != nil {
		return CreatedConversation{}, err
	}
	var row ConversationRow
	if err := json.Unmarshal(out.Conversation, &row); err != nil || row.ID == "" {
		return CreatedConversation{}, &Error{Op: "rpc api_create_conversation", Status: http.StatusBadGateway,
			Message: "undecodable answer", Err: err}
	}
	row.Raw = out.Conversation
	return CreatedConversation{Conversation: row, Existed: out.Existed}, nil
}

// SetArchived archives (or unarchives) the conversation for the user whose auth uid this is, through
// archive_conversation / unarchive_conversation; it reports whether the user's participant row changed (false:
// not an active participant, or already in that state).
func (r Rest) SetArchived(ctx context.Context, conversationID, authUID string, archived bool) (bool, error) {
	fn := "archive_conversation"
	if !archived {
		fn = "unarchive_conversation"
	}
	var changed bool
	err := r.RPC(ctx, fn, map[string]any{"conversation_uuid": conversationID, "user_uuid": authUID}, &changed)
	return changed, err
}

// Deletion scopes of DeleteConversation.
const (
	DeletedForAll  = "all"  // the conversation is gone (a direct chat, or the last one left a group)
	DeletedForSelf = "self" // the caller left, taking their own messages along
)

// DeletedConversation is what DeleteConversation removed: its scope, the Storage paths of the file rows that went
// with the messages (whose objects the caller should remove), and for message.deleted webhooks the participants
// before the wipe and how many messages went.
type DeletedConversation struct {
	Scope           string   `json:"scope"`
	StoragePaths    []string `json:"storage_paths"`
	Participants    []string `json:"participants"`
	DeletedMessages int      `json:"deleted_messages"`
}

// DeleteConversation wipes a direct chat for both people, or makes the caller leave a group or room with their own
// messages, atomically (api_delete_conversation). Refusals: ErrNotParticipant, ErrConversationNotFound,
// ErrNoteToSelf.
func (r Rest) DeleteConversation(ctx context.Context, conversationID string) (DeletedConversation, error) {
	var out DeletedConversation
	err := r.RPC(ctx, "api_delete_conversation", map[string]any{"p_conversation_id": conversationID}, &out)
	return out, err
}

// MarkConversationRead marks the caller's unread deliveries of the conversation read and starts read-based expiry
// (api_mark_conversation_read); it returns the id of the newest message it marked, nil when nothing changed.
// Refusal: ErrNotParticipant.
func (r Rest) MarkConversationRead(ctx context.Context, conversationID string) (*string, error) {
	var newest *string
	err := r.RPC(ctx, "api_mark_conversation_read", map[string]any{"p_conversation_id": conversationID}, &newest)
	return newest, err
}

// AddedParticipants is what AddParticipants did: the internal ids it added (none when all were active members
// already) and the conversation's row afterwards, raw, as CONVERSATION_CREATED carries it.
type AddedParticipants struct {
	Added        []string        `json:"added"`
	Conversation json.RawMessage `json:"conversation"`
}

// AddParticipants adds users (internal ids) to a conversation as members, re-activating those who left; a direct
// chat becomes a group (api_add_participants). Refusals: ErrConversationNotFound, ErrNotParticipant, ErrNoteToSelf,
// ErrInvalidUserIDs.
func (r Rest) AddParticipants(ctx context.Context, conversationID string, userIDs []string) (AddedParticipants, error) {
	var out AddedParticipants
	err := r.RPC(ctx, "api_add_participants", map[string]any{"p_conversation_id": conversationID, "p_user_ids": userIDs}, &out)
	return out, err
}
