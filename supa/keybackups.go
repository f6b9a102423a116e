package supa

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Queries of the key_backups table under the caller's token (routes.md §3.4): one row per user, keyed by the auth
// uid, holding the client-encrypted private keys. The server never reads inside encrypted_keys.

// ErrNoKeyBackup means the caller has stored no key backup (or PostgREST answered "not found" for the lookup).
var ErrNoKeyBackup = errors.New("supa: no key backup")

// ErrKeyBackupNotStored means the upsert of a key_backups row succeeded but PostgREST returned no row.
var ErrKeyBackupNotStored = errors.New("supa: upsert key_backups returned no row")

// KeyBackup is one key_backups row. ID is only read back by StoreKeyBackup.
type KeyBackup struct {
	ID            string `json:"id"`
	EncryptedKeys string `json:"encrypted_keys"`
	CreatedAt     string `json:"created_at"`
	UpdatedAt     string `json:"updated_at"`
}

// KeyBackup reads the key backup of authUID; ErrNoKeyBackup (wrapping the not-found failure) when there is none.
func (r Rest) KeyBackup(ctx context.Context, authUID string) (KeyBackup, error) {
	var row KeyBackup
	err := r.SelectOne(ctx, "key_backups", Q("select", "encrypted_keys,created_at,updated_at", "user_id", "eq."+authUID), &row)
	if IsNotFound(err) {
		return KeyBackup{}, fmt.Errorf("%w: %w", ErrNoKeyBackup, err)
	}
	return row, err
}

// StoreKeyBackup creates or replaces the key backup of authUID, stamping it updated at, and returns the stored row;
// ErrKeyBackupNotStored when PostgREST returned none.
func (r Rest) StoreKeyBackup(ctx context.Context, authUID, encryptedKeys string, at time.Time) (KeyBackup, error) {
	var rows []KeyBackup
	err := r.Insert(ctx, "key_backups",
		map[string]any{"user_id": authUID, "encrypted_keys": encryptedKeys, "updated_at": at.UTC().Format(time.RFC3339Nano)},
		Q("on_conflict", "user_id", "select", "id,encrypted_keys,created_at,updated_at"), &rows,
		"resolution=merge-duplicates")
	if err != nil {
		return KeyBackup{}, err
	}
	if len(rows) != 1 {
		return KeyBackup{}, ErrKeyBackupNotStored
	}
	return rows[0], nil
}
