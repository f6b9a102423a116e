package supa

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// Queries of the users table and of the user-lookup functions under the caller's token (auth.md §6, routes.md §3,
// §4). A users row is found by its auth uid (auth_user_id), the key every request carries; the internal id (id) is
// what the chat tables reference. Row-level security shows a caller their own row whole and others' rows only
// through the search and lookup functions, which return public columns only.

// ErrDuplicateProfile means more than one users row carries the caller's auth uid: a data error (auth.md §6) that
// no route can answer sensibly, so it is never resolved by picking one. The users_auth_user_id_unique index rules
// it out, but its migration leaves the index away where old data already holds duplicates.
var ErrDuplicateProfile = errors.New("supa: more than one users row for one auth uid")

// ErrUserNotFound means a lookup by a public identifier found no user.
var ErrUserNotFound = errors.New("supa: no user with that identifier")

// Profile is the part of a users row the handlers work with on every request: who the caller is inside the
// database (ID) and how they are shown to others.
type Profile struct {
	ID          string  `json:"id"`
	Username    string  `json:"username"`
	DisplayName string  `json:"display_name"`
	AvatarURL   *string `json:"avatar_url"`
}

// Profile reads the users row of authUID. ErrNoProfile when there is none (a valid token whose sign-up has not
// created the row yet, auth.md §6.1); ErrDuplicateProfile when there are several.
func (r Rest) Profile(ctx context.Context, authUID string) (Profile, error) {
	var rows []Profile
	// Two rows are asked for so that a duplicate is seen rather than hidden behind the first.
	err := r.Select(ctx, "users", Q("select", "id,username,display_name,avatar_url", "auth_user_id", "eq."+authUID, "limit", "2"), &rows)
	switch {
	case err != nil:
		return Profile{}, err
	case len(rows) == 0:
		return Profile{}, ErrNoProfile
	case len(rows) > 1:
		return Profile{}, ErrDuplicateProfile
	}
	return rows[0], nil
}

// OwnRow is the caller's whole users row as get_my_profile() returns it: every column except the PIN hash, plus
// has_backup_pin. Fields keeps the row as decoded, for the routes that answer it whole (whatever columns the schema
// gains); the typed fields are the ones handlers decide on.
type OwnRow struct {
	ID           string         `json:"id"`
	Username     string         `json:"username"`
	PhoneNumber  *string        `json:"phone_number"`
	Salt         *string        `json:"salt"`
	HasBackupPin bool           `json:"has_backup_pin"`
	Fields       map[string]any `json:"-"`
}

// OwnRow reads the caller's own users row through get_my_profile(); ErrNoProfile when there is none.
func (r Rest) OwnRow(ctx context.Context) (OwnRow, error) {
	var rows []json.RawMessage
	if err := r.RPC(ctx, "get_my_profile", nil, &rows); err != nil {
		return OwnRow{}, err
	}
	if len(rows) == 0 {
		return OwnRow{}, ErrNoProfile
	}
	var row OwnRow
	if err := json.Unmarshal(rows[0], &row); err != nil {
		return OwnRow{}, &Error{Op: "rpc get_my_profile", Status: http.StatusOK, Message: "undecodable answer", Err: err}
	}
	if err := json.Unmarshal(rows[0], &row.Fields); err != nil {
		return OwnRow{}, &Error{Op: "rpc get_my_profile", Status: http.StatusOK, Message: "undecodable answer", Err: err}
	}
	return row, nil
}

// updateOwn patches the users row of authUID with fields and returns it with the columns cols. ErrNoProfile when
// no row was updated (there is none, or row-level security hid it).
func updateOwn[T any](ctx context.Context, r Rest, authUID string, fields map[string]any, cols string) (T, error) {
	var rows []T
	var zero T
	if err := r.Update(ctx, "users", fields, Q("auth_user_id", "eq."+authUID, "select", cols), &rows); err != nil {
		return zero, err
	}
	if len(rows) == 0 {
		return zero, ErrNoProfile
	}
	return rows[0], nil
}

// setOwn sets columns of the users row of authUID; ErrNoProfile when there is no row to set them on.
func (r Rest) setOwn(ctx context.Context, authUID string, fields map[string]any) error {
	_, err := updateOwn[struct {
		ID string `json:"id"`
	}](ctx, r, authUID, fields, "id")
	return err
}

// SetBackupPinHash stores the hash of the caller's backup PIN (routes.md §3.1); ErrNoProfile when there is no row.
func (r Rest) SetBackupPinHash(ctx context.Context, authUID, hash string) error {
	return r.setOwn(ctx, authUID, map[string]any{"backup_pin_hash": hash})
}

// SetSalt stores the caller's key-derivation salt (routes.md §3.5); ErrNoProfile when there is no row.
func (r Rest) SetSalt(ctx context.Context, authUID, salt string) error {
	return r.setOwn(ctx, authUID, map[string]any{"salt": salt})
}

// SetAvatarURL points the caller's avatar_url at url, or clears it when url is nil (routes.md §3.8). A caller
// without a row is no error: there is nothing to point.
func (r Rest) SetAvatarURL(ctx context.Context, authUID string, url *string) error {
	return r.Update(ctx, "users", map[string]any{"avatar_url": url}, Q("auth_user_id", "eq."+authUID), nil)
}

// PublicProfile is a user as others may see them (and as the profile routes answer): no phone number, no keys.
type PublicProfile struct {
	Profile
	Bio     *string `json:"bio"`
	Website *string `json:"website"`
}

const publicProfileColumns = "id,username,display_name,avatar_url,bio,website"

// ProfileChanges is an edit of the caller's profile texts (routes.md §4.5). A nil field is left as it is; an empty
// one is cleared (stored as null).
type ProfileChanges struct {
	Bio       *string
	Website   *string
	UpdatedAt string // RFC 3339, stamped by the caller's clock
}

// UpdateProfile applies changes to the caller's users row and returns it; ErrNoProfile when no row was updated.
func (r Rest) UpdateProfile(ctx context.Context, authUID string, changes ProfileChanges) (PublicProfile, error) {
	fields := map[string]any{"updated_at": changes.UpdatedAt}
	for col, v := range map[string]*string{"bio": changes.Bio, "website": changes.Website} {
		switch {
		case v == nil:
		case *v == "":
			fields[col] = nil
		default:
			fields[col] = *v
		}
	}
	return updateOwn[PublicProfile](ctx, r, authUID, fields, publicProfileColumns)
}

// UserByIdentifier finds a user by their public identifier (qryptchat + 8 characters, matched exactly) through
// find_user_by_unique_identifier(); ErrUserNotFound when there is none.
func (r Rest) UserByIdentifier(ctx context.Context, identifier string) (PublicProfile, error) {
	var rows []PublicProfile
	if err := r.RPC(ctx, "find_user_by_unique_identifier", map[string]any{"identifier": identifier}, &rows); err != nil {
		return PublicProfile{}, err
	}
	if len(rows) == 0 {
		return PublicProfile{}, ErrUserNotFound
	}
	return rows[0], nil
}

// SearchHit is one row of search_users(): public columns, a masked phone number and the phone part of the match
// score (the number itself never leaves the database).
type SearchHit struct {
	Profile
	UniqueIdentifier *string `json:"unique_identifier"`
	PhonePartial     *string `json:"phone_partial"`
	PhoneScore       int     `json:"phone_score"`
}

// SearchUsers lists the users search_users() matches for q (lowercased by the caller), the caller excluded.
func (r Rest) SearchUsers(ctx context.Context, q string) ([]SearchHit, error) {
	var hits []SearchHit
	err := r.RPC(ctx, "search_users", map[string]any{"q": q}, &hits)
	return hits, err
}

// AuthUIDs maps internal user ids to auth uids, as far as the caller may see the rows; ids without a visible row
// (or without an auth uid) are missing from the map. The ids must be validated UUIDs.
func (r Rest) AuthUIDs(ctx context.Context, ids []string) (map[string]string, error) {
	var rows []struct {
		ID         string  `json:"id"`
		AuthUserID *string `json:"auth_user_id"`
	}
	if err := r.Select(ctx, "users", Q("select", "id,auth_user_id", "id", In(ids)), &rows); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, row := range rows {
		if row.AuthUserID != nil {
			out[row.ID] = *row.AuthUserID
		}
	}
	return out, nil
}
