package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// fakeStorage stands in for Supabase Storage, which cannot run on this machine (it is a separate service of the
// Supabase stack). It is NOT a mock of PostgREST or Postgres: those are real in every test. It checks the exact
// requests suparelay sends — method, path, apikey and Authorization headers, Content-Type and JSON bodies — fails
// the test on any request of a shape the real Storage API would not accept, and records them for assertions. It
// keeps objects in memory so that list, download and delete behave like the real service.
type fakeStorage struct {
	t       testing.TB
	srv     *httptest.Server
	mu      sync.Mutex
	objects map[string][]byte // "<bucket>/<path>"
	calls   []storageCall
}

type storageCall struct {
	Method, Path, Bearer, ContentType string
	Body                              []byte
}

func newFakeStorage(t testing.TB) *fakeStorage {
	f := &fakeStorage{t: t, objects: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeStorage) put(key string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[key] = data
}

func (f *fakeStorage) has(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.objects[key]
	return ok
}

func (f *fakeStorage) recorded() []storageCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]storageCall(nil), f.calls...)
}

func (f *fakeStorage) fail(w http.ResponseWriter, format string, args ...any) {
	f.t.Errorf("storage fake: "+format, args...)
	http.Error(w, `{"statusCode":"400","error":"bad_request","message":"unexpected request"}`, http.StatusBadRequest)
}

func (f *fakeStorage) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	f.calls = append(f.calls, storageCall{Method: r.Method, Path: r.URL.Path, Bearer: bearer, ContentType: r.Header.Get("Content-Type"), Body: body})
	f.mu.Unlock()
	if r.Header.Get("apikey") != devkeys.AnonKey() {
		f.fail(w, "%s %s without the anon apikey", r.Method, r.URL.Path)
		return
	}
	if strings.Count(bearer, ".") != 2 {
		f.fail(w, "%s %s without a Bearer JWT", r.Method, r.URL.Path)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/storage/v1/")
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(p, "object/upload/sign/"):
		key := strings.TrimPrefix(p, "object/upload/sign/")
		if r.Header.Get("Content-Type") != "application/json" {
			f.fail(w, "sign upload without JSON content type")
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"url": "/object/upload/sign/" + key + "?token=signed-" + strings.ReplaceAll(key, "/", "-")})
	case r.Method == http.MethodPost && strings.HasPrefix(p, "object/list/"):
		bucket := strings.TrimPrefix(p, "object/list/")
		var q struct {
			Prefix string `json:"prefix"`
			Search string `json:"search"`
			Limit  int    `json:"limit"`
		}
		if json.Unmarshal(body, &q) != nil || q.Limit <= 0 {
			f.fail(w, "list body %s", body)
			return
		}
		f.mu.Lock()
		seen := map[string]bool{}
		var names []string
		for k := range f.objects {
			rest, ok := strings.CutPrefix(k, bucket+"/"+strings.TrimSuffix(q.Prefix, "/")+"/")
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(rest, "/")
			if strings.Contains(name, q.Search) && !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
		f.mu.Unlock()
		sort.Strings(names)
		out := []map[string]any{}
		for _, n := range names {
			out = append(out, map[string]any{"name": n, "id": "obj-" + n, "metadata": map[string]any{}})
		}
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodGet && strings.HasPrefix(p, "object/authenticated/"):
		key := strings.TrimPrefix(p, "object/authenticated/")
		f.mu.Lock()
		data, ok := f.objects[key]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"statusCode":"404","error":"not_found","message":"Object not found"}`))
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(data)
	case r.Method == http.MethodDelete && strings.HasPrefix(p, "object/"):
		bucket := strings.TrimPrefix(p, "object/")
		var q struct {
			Prefixes []string `json:"prefixes"`
		}
		if json.Unmarshal(body, &q) != nil || len(q.Prefixes) == 0 {
			f.fail(w, "delete body %s", body)
			return
		}
		f.mu.Lock()
		var out []map[string]string
		for _, k := range q.Prefixes {
			if _, ok := f.objects[bucket+"/"+k]; ok {
				delete(f.objects, bucket+"/"+k)
				out = append(out, map[string]string{"name": k})
			}
		}
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodPost && strings.HasPrefix(p, "object/"):
		key := strings.TrimPrefix(p, "object/")
		if r.Header.Get("x-upsert") != "false" || r.Header.Get("Content-Type") == "" {
			f.fail(w, "upload without x-upsert:false or content type")
			return
		}
		f.put(key, body)
		_ = json.NewEncoder(w).Encode(map[string]string{"Key": key})
	default:
		f.fail(w, "unexpected %s %s", r.Method, r.URL.Path)
	}
}
