package supa

import "context"

// Groups as the chat's group list reads them (routes.md §7.4), through get_user_groups() under the caller's token.

// Group is one row of get_user_groups(): a group the user belongs to, with their role and its counts.
type Group struct {
	GroupID          string  `json:"group_id"`
	GroupName        string  `json:"group_name"`
	GroupDescription *string `json:"group_description"`
	GroupAvatarURL   *string `json:"group_avatar_url"`
	UserRole         *string `json:"user_role"`
	RoomCount        int64   `json:"room_count"`
	MemberCount      int64   `json:"member_count"`
	LatestActivity   *string `json:"latest_activity"`
}

// GroupsOf lists the groups of userID (the caller's internal id: the function refuses anyone else's); never nil,
// so that none encodes as [].
func (r Rest) GroupsOf(ctx context.Context, userID string) ([]Group, error) {
	groups := []Group{}
	err := r.RPC(ctx, "get_user_groups", map[string]any{"user_uuid": userID}, &groups)
	return groups, err
}
