package schematest

import (
	"net/http"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// encrypted_files rows and encrypted-files Storage objects: uploader folder = auth uid, readable by the
// conversation's participants through the file row (schema.md §8), by nobody else.
func TestFilesAndStorageRLS(t *testing.T) {
	t.Parallel()
	api := newREST(t)
	c := newChat(t)
	owner, member, outsider := c.owner.Token(t, time.Hour), c.member.Token(t, time.Hour), c.outsider.Token(t, time.Hour)
	path := c.owner.AuthID + "/" + c.conv + "/file_1700000000000_" + testenv.RandomHex(6)[:12] + "a"

	status, body := api.do(t, http.MethodPost, "/encrypted_files", owner, map[string]any{
		"message_id": c.msg, "storage_path": path, "encrypted_metadata": map[string]string{c.owner.ID: "x", c.member.ID: "y"},
		"created_by": c.owner.AuthID,
	})
	if status != http.StatusCreated {
		t.Fatalf("owner inserts the file row: %d %s", status, body)
	}
	if status, body := api.do(t, http.MethodPost, "/encrypted_files", outsider, map[string]any{
		"message_id": c.msg, "storage_path": path, "encrypted_metadata": map[string]string{}, "created_by": c.outsider.AuthID,
	}); status != http.StatusForbidden {
		t.Fatalf("outsider inserts a file row: %d %s, want 403", status, body)
	}
	// The object itself, as Supabase Storage would have stored it after the signed upload.
	_, err := testenv.DB(t).Exec(ctxT(t), `insert into storage.objects (bucket_id, name, owner) values ('encrypted-files', $1, $2)`,
		path, c.owner.AuthID)
	must(t, "object", err)

	storage := []string{"Accept-Profile", "storage"}
	cases := []struct {
		name, token, path string
		headers           []string
		wantRows          int
	}{
		{"owner reads the file row", owner, "/encrypted_files?message_id=eq." + c.msg, nil, 1},
		{"member reads the file row", member, "/encrypted_files?message_id=eq." + c.msg, nil, 1},
		{"outsider reads no file row", outsider, "/encrypted_files?message_id=eq." + c.msg, nil, 0},
		{"has_attachments set by the trigger", member, "/messages?has_attachments=is.true&id=eq." + c.msg, nil, 1},
		{"owner reads the object (own folder)", owner, "/objects?select=name&name=eq." + path, storage, 1},
		{"member reads the object (file row)", member, "/objects?select=name&name=eq." + path, storage, 1},
		{"outsider reads no object", outsider, "/objects?select=name&name=eq." + path, storage, 0},
		{"anon key reads no object", devkeys.AnonKey(), "/objects?select=name&name=eq." + path, storage, 0},
	}
	for _, tc := range cases {
		status, body := api.do(t, http.MethodGet, tc.path, tc.token, nil, tc.headers...)
		got, ok := rows(body)
		if status != http.StatusOK || !ok || len(got) != tc.wantRows {
			t.Errorf("%s: GET %s = %d %s, want 200 with %d row(s)", tc.name, tc.path, status, body, tc.wantRows)
		}
	}
}
