package supa

import "context"

// Queries of the settings routes under the caller's token (routes.md §9.2, §6.10): the default retention of a
// user's messages (a users column) and each participant's own disappearing-messages timer of a conversation (two
// conversation_participants columns).

// RetentionDays reads the default message retention of authUID in days; nil when there is no row to read it from.
func (r Rest) RetentionDays(ctx context.Context, authUID string) (*int, error) {
	var rows []struct {
		Days *int `json:"default_message_retention_days"`
	}
	err := r.Select(ctx, "users", Q("select", "default_message_retention_days", "auth_user_id", "eq."+authUID, "limit", "1"), &rows)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return rows[0].Days, nil
}

// SetRetentionDays sets the default message retention of authUID; ErrNoProfile when there is no row.
func (r Rest) SetRetentionDays(ctx context.Context, authUID string, days int) error {
	return r.setOwn(ctx, authUID, map[string]any{"default_message_retention_days": days})
}

// SetDisappearing sets userID's (internal id) own timer of a conversation: messages disappear seconds after they
// were delivered or read (startOn "delivered" or "read"); 0 turns it off. ErrNotParticipant when userID is not an
// active participant of the conversation. Both ids must be validated UUIDs.
func (r Rest) SetDisappearing(ctx context.Context, conversationID, userID string, seconds int, startOn string) error {
	var rows []struct {
		ID string `json:"id"`
	}
	err := r.Update(ctx, "conversation_participants", map[string]any{"disappear_seconds": seconds, "start_on": startOn},
		Q("conversation_id", "eq."+conversationID, "user_id", "eq."+userID, "left_at", "is.null", "select", "id"), &rows)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return ErrNotParticipant
	}
	return nil
}
