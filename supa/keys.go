package supa

import "context"

// Queries of user_public_keys under the caller's token (routes.md §5, §9.1). Keys are keyed by the owner's auth uid
// and one key type; everyone signed in may read public keys (that is what they are for), and only the owner may
// write theirs, which upsert_user_public_key() enforces itself.

// PublicKey is a user's public key: whose (auth uid) and the key text.
type PublicKey struct {
	UserID    string `json:"user_id"`
	PublicKey string `json:"public_key"`
}

// maxPublicKeyRows bounds AllPublicKeys; PostgREST caps answers at as many rows anyway.
const maxPublicKeyRows = "1000"

// PublicKeyOf returns the key of type keyType of the user with auth uid authUID through get_user_public_key();
// nil when they have none.
func (r Rest) PublicKeyOf(ctx context.Context, authUID, keyType string) (*string, error) {
	var key *string
	err := r.RPC(ctx, "get_user_public_key", map[string]any{"target_user_id": authUID, "key_type_param": keyType}, &key)
	return key, err
}

// PublicKeys lists the keys of type keyType of the users with the given auth uids (validated UUIDs); users without
// one are missing.
func (r Rest) PublicKeys(ctx context.Context, authUIDs []string, keyType string) ([]PublicKey, error) {
	var rows []PublicKey
	err := r.Select(ctx, "user_public_keys", Q("select", "user_id,public_key", "key_type", "eq."+keyType, "user_id", In(authUIDs)), &rows)
	return rows, err
}

// AllPublicKeys lists stored public keys by auth uid, up to maxPublicKeyRows; never nil, so that none encodes as [].
func (r Rest) AllPublicKeys(ctx context.Context) ([]PublicKey, error) {
	rows := []PublicKey{}
	err := r.Select(ctx, "user_public_keys",
		Q("select", "user_id,public_key", "public_key", "not.is.null", "order", "user_id.asc", "limit", maxPublicKeyRows), &rows)
	return rows, err
}

// UpsertPublicKey stores key as the caller's (authUID's) key of type keyType, replacing an older one of that type,
// and returns the key row's id.
func (r Rest) UpsertPublicKey(ctx context.Context, authUID, key, keyType string) (string, error) {
	var keyID string
	err := r.RPC(ctx, "upsert_user_public_key",
		map[string]any{"target_user_id": authUID, "public_key_param": key, "key_type_param": keyType}, &keyID)
	return keyID, err
}

// DeletePublicKeys removes every public key of authUID.
func (r Rest) DeletePublicKeys(ctx context.Context, authUID string) error {
	return r.Delete(ctx, "user_public_keys", Q("user_id", "eq."+authUID), nil)
}

// StoredKey is one of a user's key rows, by row id, as the legacy-key cleanup inspects them.
type StoredKey struct {
	ID        string `json:"id"`
	PublicKey string `json:"public_key"`
}

// KeysOf lists the key rows of authUID, of every type.
func (r Rest) KeysOf(ctx context.Context, authUID string) ([]StoredKey, error) {
	var rows []StoredKey
	err := r.Select(ctx, "user_public_keys", Q("select", "id,public_key", "user_id", "eq."+authUID), &rows)
	return rows, err
}

// DeleteKeysByID removes the key rows ids (validated UUIDs) of authUID and returns how many went; ids of other
// users' keys are ignored.
func (r Rest) DeleteKeysByID(ctx context.Context, authUID string, ids []string) (int, error) {
	var deleted []struct {
		ID string `json:"id"`
	}
	err := r.Delete(ctx, "user_public_keys", Q("id", In(ids), "user_id", "eq."+authUID, "select", "id"), &deleted)
	return len(deleted), err
}
