package supa

import (
	"context"
	"encoding/json"
	"errors"
)

// Rows and queries of the files routes (routes.md §8): encrypted_files, the metadata rows of the objects in the
// encrypted-files bucket, and the one messages lookup an upload needs. All of them run under the caller's token
// (Rest), so row-level security applies on top of the handlers' own checks.

// ErrFileNotRecorded means the insert of an encrypted_files row succeeded but PostgREST returned no row: the file's
// id and time are unknown, so the upload cannot be reported as complete.
var ErrFileNotRecorded = errors.New("supa: insert encrypted_files returned no row")

// FileRow is one encrypted_files row with the conversation of its message.
type FileRow struct {
	ID                string          `json:"id"`
	MessageID         string          `json:"message_id"`
	StoragePath       string          `json:"storage_path"`
	EncryptedMetadata json.RawMessage `json:"encrypted_metadata"`
	CreatedAt         string          `json:"created_at"`
	CreatedBy         string          `json:"created_by"` // auth uid of the uploader
	Message           *FileMessage    `json:"messages"`
}

// FileMessage is the part of a file's message that the files routes read: where it was sent.
type FileMessage struct {
	ConversationID string `json:"conversation_id"`
}

// fileColumns embeds the message with !inner, so that a file whose message the caller cannot see is not returned.
const fileColumns = "id,message_id,storage_path,encrypted_metadata,created_at,created_by,messages!inner(conversation_id)"

// File reads one encrypted_files row with its message's conversation; nil when there is none, or when its message
// is not visible to the caller.
func (r Rest) File(ctx context.Context, fileID string) (*FileRow, error) {
	var rows []FileRow
	if err := r.Select(ctx, "encrypted_files", Q("select", fileColumns, "id", "eq."+fileID, "limit", "1"), &rows); err != nil {
		return nil, err
	}
	if len(rows) == 0 || rows[0].Message == nil {
		return nil, nil
	}
	return &rows[0], nil
}

// FilesOfMessage lists the encrypted_files rows of a message, oldest first.
func (r Rest) FilesOfMessage(ctx context.Context, messageID string) ([]FileRow, error) {
	var rows []FileRow
	err := r.Select(ctx, "encrypted_files", Q("select", fileColumns, "message_id", "eq."+messageID, "order", "created_at.asc"), &rows)
	return rows, err
}

// NewFile is an encrypted_files row to record: the object at StoragePath belongs to MessageID.
type NewFile struct {
	MessageID         string          `json:"message_id"`
	StoragePath       string          `json:"storage_path"`
	EncryptedMetadata json.RawMessage `json:"encrypted_metadata"`
	CreatedBy         string          `json:"created_by"` // the uploader's auth uid
}

// RecordedFile is what the database assigned to a recorded file.
type RecordedFile struct {
	ID        string `json:"id"`
	CreatedAt string `json:"created_at"`
}

// RecordFile inserts an encrypted_files row and returns its id and creation time; ErrFileNotRecorded when
// PostgREST returned no row.
func (r Rest) RecordFile(ctx context.Context, f NewFile) (RecordedFile, error) {
	var rows []RecordedFile
	if err := r.Insert(ctx, "encrypted_files", f, Q("select", "id,created_at"), &rows); err != nil {
		return RecordedFile{}, err
	}
	if len(rows) != 1 {
		return RecordedFile{}, ErrFileNotRecorded
	}
	return rows[0], nil
}

// IsMessageSender reports whether messageID is a message of the conversation sent by userID (internal id), as far
// as the caller can see: files may only be attached to one's own messages.
func (r Rest) IsMessageSender(ctx context.Context, messageID, conversationID, userID string) (bool, error) {
	var rows []struct {
		ID string `json:"id"`
	}
	err := r.Select(ctx, "messages", Q("select", "id", "id", "eq."+messageID,
		"conversation_id", "eq."+conversationID, "sender_id", "eq."+userID, "limit", "1"), &rows)
	return len(rows) == 1, err
}
