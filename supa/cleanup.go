package supa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Queries of the cleanup routes (routes.md §9.1) and of the nuclear delete (§4.6), under the caller's token: each
// removes only the caller's own data, whatever the original's routes intended. The decisions (which key or message
// is "legacy") stay with the handlers; this file only finds candidates and deletes what it is given.

// maxCleanupRows bounds how many conversations or messages one cleanup request inspects.
const maxCleanupRows = "1000"

// deleteBatch is how many ids one delete names, keeping the in.(…) filter well inside URL limits.
const deleteBatch = 100

// EmptyConversationIDs lists the ids of the conversations creatorID (internal id) created that hold no message,
// note-to-self excluded; up to maxCleanupRows conversations are inspected.
func (r Rest) EmptyConversationIDs(ctx context.Context, creatorID string) ([]string, error) {
	var rows []struct {
		ID       string `json:"id"`
		Messages []struct {
			Count int `json:"count"`
		} `json:"messages"`
	}
	err := r.Select(ctx, "conversations", Q("select", "id,messages(count)",
		"created_by", "eq."+creatorID, "type", "neq.note_to_self", "limit", maxCleanupRows), &rows)
	if err != nil {
		return nil, err
	}
	var empty []string
	for _, c := range rows {
		if len(c.Messages) == 0 || c.Messages[0].Count == 0 {
			empty = append(empty, c.ID)
		}
	}
	return empty, nil
}

// DeleteCreatedConversations deletes the conversations ids that creatorID created and returns the ids deleted;
// ids of conversations someone else created are ignored.
func (r Rest) DeleteCreatedConversations(ctx context.Context, creatorID string, ids []string) ([]string, error) {
	var rows []struct {
		ID string `json:"id"`
	}
	if err := r.Delete(ctx, "conversations", Q("id", In(ids), "created_by", "eq."+creatorID, "select", "id"), &rows); err != nil {
		return nil, err
	}
	deleted := make([]string, len(rows))
	for i, row := range rows {
		deleted[i] = row.ID
	}
	return deleted, nil
}

// OwnMessage is one of a user's sent messages with every per-recipient copy of its content, as the legacy-message
// cleanup inspects them.
type OwnMessage struct {
	ID               string `json:"id"`
	EncryptedContent string `json:"encrypted_content"` // bytea, as PostgREST renders it (\x + hex)
	Copies           []struct {
		EncryptedContent string `json:"encrypted_content"` // base64
	} `json:"message_recipients"`
}

// SentMessages lists the oldest maxCleanupRows messages senderID (internal id) sent, with their copies.
func (r Rest) SentMessages(ctx context.Context, senderID string) ([]OwnMessage, error) {
	var rows []OwnMessage
	err := r.Select(ctx, "messages", Q("select", "id,encrypted_content,message_recipients(encrypted_content)",
		"sender_id", "eq."+senderID, "order", "created_at.asc", "limit", maxCleanupRows), &rows)
	return rows, err
}

// DeletedMessage is one message a delete removed: what a message.deleted webhook names.
type DeletedMessage struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
}

// DeleteSentMessages deletes the messages ids that senderID sent, deleteBatch at a time, and returns those that
// went. A failing batch stops it: the ones so far come back with the error (earlier batches stay deleted).
func (r Rest) DeleteSentMessages(ctx context.Context, senderID string, ids []string) ([]DeletedMessage, error) {
	var gone []DeletedMessage
	for start := 0; start < len(ids); start += deleteBatch {
		var part []DeletedMessage
		err := r.Delete(ctx, "messages", Q("id", In(ids[start:min(start+deleteBatch, len(ids))]),
			"sender_id", "eq."+senderID, "select", "id,conversation_id"), &part)
		if err != nil {
			return gone, err
		}
		gone = append(gone, part...)
	}
	return gone, nil
}

// Refusals of delete_encrypted_data_only(), which raises them as plain exceptions told apart by their texts.
var (
	ErrDeleteOthersData    = errors.New("supa: users can only delete their own data")
	ErrDeleteUnauthorized  = errors.New("supa: deleting data needs an authenticated user")
	ErrDeleteUserNotFound  = errors.New("supa: the user whose data is to be deleted does not exist")
	ErrDeleteReturnedEmpty = errors.New("supa: delete_encrypted_data_only returned no result")
)

// deleteRefusals pairs the function's exception texts with their sentinels, in the order they are tested: the
// texts could in principle appear inside one another's messages, and the first match wins as in the original.
var deleteRefusals = []struct {
	text string
	err  error
}{
	{"Users can only delete their own data", ErrDeleteOthersData},
	{"User must be authenticated", ErrDeleteUnauthorized},
	{"User not found", ErrDeleteUserNotFound},
}

// DeleteEncryptedData deletes every piece of encrypted data of userID (the caller's internal id) — messages, copies,
// files, keys, participations — through delete_encrypted_data_only(), keeping the account itself, and returns the
// function's summary as is. Its refusals come back as ErrDeleteOthersData, ErrDeleteUnauthorized or
// ErrDeleteUserNotFound (wrapping the failure); an empty answer is ErrDeleteReturnedEmpty.
func (r Rest) DeleteEncryptedData(ctx context.Context, userID string) (json.RawMessage, error) {
	var summary json.RawMessage
	err := r.RPC(ctx, "delete_encrypted_data_only", map[string]any{"authenticated_user_id": userID, "target_user_id": userID}, &summary)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			for _, d := range deleteRefusals {
				if strings.Contains(e.Message, d.text) {
					return nil, fmt.Errorf("%w: %w", d.err, err)
				}
			}
		}
		return nil, err
	}
	if s := strings.TrimSpace(string(summary)); s == "" || s == "null" {
		return nil, ErrDeleteReturnedEmpty
	}
	return summary, nil
}
