package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// storageAdmin reaches the stack's real Supabase Storage (through the gateway, as suparelay does) with the service
// key, to arrange objects before a test and to look at what a route left behind. Keys are "<bucket>/<path>".
type storageAdmin struct {
	t    testing.TB
	base string // .../storage/v1
}

func newStorageAdmin(t testing.TB) *storageAdmin {
	return &storageAdmin{t: t, base: testenv.SupabaseURL(t) + "/storage/v1"}
}

func (s *storageAdmin) call(method, path, ctype string, body []byte) (int, []byte) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+devkeys.ServiceRoleKey())
	req.Header.Set("apikey", devkeys.AnonKey())
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if method == http.MethodPost {
		req.Header.Set("x-upsert", "true")
	}
	res, err := isolatedClient.Do(req)
	if err != nil {
		s.t.Fatalf("storage %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// put stores data at key as the service role.
func (s *storageAdmin) put(key string, data []byte) {
	s.t.Helper()
	if st, b := s.call(http.MethodPost, "/object/"+key, "application/octet-stream", data); st != http.StatusOK {
		s.t.Fatalf("storage put %s: %d %s", key, st, b)
	}
}

// get returns the object's bytes, or ok false when Storage has no such object.
func (s *storageAdmin) get(key string) ([]byte, bool) {
	s.t.Helper()
	st, b := s.call(http.MethodGet, "/object/"+key, "", nil)
	return b, st == http.StatusOK
}

// has reports whether the object exists (its storage.objects row, which Storage keeps with the file).
func (s *storageAdmin) has(key string) bool {
	s.t.Helper()
	_, ok := s.get(key)
	return ok
}

// remove deletes the object behind suparelay's back (a vanished object).
func (s *storageAdmin) remove(key string) {
	s.t.Helper()
	bucket, path, _ := strings.Cut(key, "/")
	body := fmt.Sprintf(`{"prefixes":[%q]}`, path)
	if st, b := s.call(http.MethodDelete, "/object/"+bucket, "application/json", []byte(body)); st != http.StatusOK {
		s.t.Fatalf("storage remove %s: %d %s", key, st, b)
	}
}

// owner returns the auth uid Storage recorded as the object's owner ("" for service-role uploads): the proof that
// a route uploaded under the caller's own token.
func (s *storageAdmin) owner(key string) string {
	s.t.Helper()
	bucket, path, _ := strings.Cut(key, "/")
	var owner *string
	err := testenv.DB(s.t).QueryRow(context.Background(),
		`select owner_id from storage.objects where bucket_id = $1 and name = $2`, bucket, path).Scan(&owner)
	if err != nil {
		s.t.Fatalf("storage.objects row of %s: %v", key, err)
	}
	if owner == nil {
		return ""
	}
	return *owner
}

// count returns how many objects lie under prefix ("<bucket>/<folder>/").
func (s *storageAdmin) count(prefix string) int {
	s.t.Helper()
	bucket, path, _ := strings.Cut(prefix, "/")
	var n int
	err := testenv.DB(s.t).QueryRow(context.Background(),
		`select count(*) from storage.objects where bucket_id = $1 and name like $2 || '%'`, bucket, path).Scan(&n)
	if err != nil {
		s.t.Fatal(err)
	}
	return n
}
