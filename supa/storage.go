package supa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Supabase Storage over its HTTP API. Storage applies its own row-level security on storage.objects from the
// caller's token, exactly like PostgREST, so these calls go out under the user's token too.

// Buckets used by the app (schema.md §8).
const (
	BucketAvatars        = "avatars"
	BucketEncryptedFiles = "encrypted-files"
)

// escapePath escapes each segment of an object path, keeping the slashes.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

func (c *Client) storageRequest(ctx context.Context, method, path, token string, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.storage+"/"+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("apikey", c.anonKey)
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

func (c *Client) storageJSON(ctx context.Context, method, path, token string, body any, out any) error {
	var rd io.Reader
	ct := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return &Error{Op: "storage " + path, Err: err}
		}
		rd, ct = bytes.NewReader(b), "application/json"
	}
	req, err := c.storageRequest(ctx, method, path, token, rd, ct)
	if err != nil {
		return &Error{Op: "storage", Err: err}
	}
	return c.send(ctx, req, "storage "+method, out)
}

// SignedUpload is a signed upload URL for one object.
type SignedUpload struct {
	URL   string // absolute, on the given public base URL
	Token string
}

// CreateSignedUploadURL asks Storage for a one-time upload URL for bucket/path, under the caller's token (the
// insert policy of the bucket decides), and rebases it on publicBase, the Supabase URL the browser uses.
func (c *Client) CreateSignedUploadURL(ctx context.Context, token, bucket, path, publicBase string) (SignedUpload, error) {
	var out struct {
		URL   string `json:"url"`
		Token string `json:"token"`
	}
	if err := c.storageJSON(ctx, http.MethodPost, "object/upload/sign/"+bucket+"/"+escapePath(path), token, map[string]any{}, &out); err != nil {
		return SignedUpload{}, err
	}
	rel := out.URL
	if rel == "" {
		return SignedUpload{}, &Error{Op: "storage sign upload", Status: http.StatusBadGateway, Message: "no url in answer"}
	}
	if u, err := url.Parse(rel); err == nil && u.IsAbs() {
		rel = u.RequestURI()
		rel = strings.TrimPrefix(rel, "/storage/v1")
	}
	if !strings.HasPrefix(rel, "/") {
		rel = "/" + rel
	}
	tok := out.Token
	if tok == "" {
		if u, err := url.Parse(rel); err == nil {
			tok = u.Query().Get("token")
		}
	}
	return SignedUpload{URL: strings.TrimRight(publicBase, "/") + "/storage/v1" + rel, Token: tok}, nil
}

// ObjectInfo is one entry of a Storage listing.
type ObjectInfo struct {
	Name     string         `json:"name"`
	ID       *string        `json:"id"`
	Metadata map[string]any `json:"metadata"`
}

// ListObjects lists the objects directly inside folder whose names contain search.
func (c *Client) ListObjects(ctx context.Context, token, bucket, folder, search string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	err := c.storageJSON(ctx, http.MethodPost, "object/list/"+bucket, token, map[string]any{
		"prefix": folder, "search": search, "limit": 100, "offset": 0,
		"sortBy": map[string]string{"column": "name", "order": "asc"},
	}, &out)
	return out, err
}

// ErrObjectTooLarge is returned by Download when the object exceeds the caller's limit.
var ErrObjectTooLarge = errors.New("storage object too large")

// Download reads an object under the caller's token, refusing objects larger than max bytes.
func (c *Client) Download(ctx context.Context, token, bucket, path string, max int64) ([]byte, error) {
	req, err := c.storageRequest(ctx, http.MethodGet, "object/authenticated/"+bucket+"/"+escapePath(path), token, nil, "")
	if err != nil {
		return nil, &Error{Op: "storage download", Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, 4*c.timeout)
	defer cancel()
	resp, err := c.http.Do(req.WithContext(ctx))
	if err != nil {
		return nil, &Error{Op: "storage download", Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, decodeError("storage download", resp.StatusCode, data)
	}
	if resp.ContentLength > max {
		return nil, ErrObjectTooLarge
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, &Error{Op: "storage download", Err: err}
	}
	if int64(len(data)) > max {
		return nil, ErrObjectTooLarge
	}
	return data, nil
}

// Upload stores body at bucket/path under the caller's token; it never overwrites an existing object.
func (c *Client) Upload(ctx context.Context, token, bucket, path, contentType string, body []byte) error {
	req, err := c.storageRequest(ctx, http.MethodPost, "object/"+bucket+"/"+escapePath(path), token, bytes.NewReader(body), contentType)
	if err != nil {
		return &Error{Op: "storage upload", Err: err}
	}
	req.Header.Set("x-upsert", "false")
	req.Header.Set("cache-control", "max-age=3600")
	return c.send(ctx, req, "storage upload", nil)
}

// RemoveObjects deletes objects under the caller's token (the bucket's delete policy decides).
func (c *Client) RemoveObjects(ctx context.Context, token, bucket string, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	return c.storageJSON(ctx, http.MethodDelete, "object/"+bucket, token, map[string]any{"prefixes": paths}, nil)
}

// RemoveWipedConversationObjects deletes the encrypted-files objects of a direct conversation that
// api_delete_conversation has just wiped for both participants.
//
// Service role because: the objects of the OTHER participant live in that participant's folder, which the caller's
// token may not delete; leaving them would orphan ciphertext forever (a defect of the original). The paths come
// from the database function's answer (rows it deleted on the caller's verified request), never from the client,
// and each must lie in the conversation's own subfolder.
func (c *Client) RemoveWipedConversationObjects(ctx context.Context, conversationID string, paths []string) error {
	var scoped []string
	for _, p := range paths {
		parts := strings.Split(p, "/")
		if len(parts) == 3 && parts[1] == conversationID && parts[0] != "" && parts[2] != "" {
			scoped = append(scoped, p)
		}
	}
	if len(scoped) == 0 {
		return nil
	}
	if c.serviceKey == "" {
		return &Error{Op: "storage remove", Err: fmt.Errorf("service role key not configured")}
	}
	return c.storageJSON(ctx, http.MethodDelete, "object/"+BucketEncryptedFiles, c.serviceKey, map[string]any{"prefixes": scoped}, nil)
}
