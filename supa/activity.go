package supa

import "context"

// UpdateUserActivity stamps userID (the caller's internal id) as active now, through update_user_activity: it feeds
// "last active" and the SMS-notice decisions, and the send and load paths leave it behind.
func (r Rest) UpdateUserActivity(ctx context.Context, userID string) error {
	return r.RPC(ctx, "update_user_activity", map[string]any{"user_uuid": userID}, nil)
}
