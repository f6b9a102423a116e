package api_test

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// contractRoute is one route file of the original server: its path, its methods and whether it is a debug route.
type contractRoute struct {
	path    string
	methods []string
	debug   bool
}

// readContractRoutes reads testdata/routes.tsv, the project's own list of the original's route files.
func readContractRoutes(t *testing.T) []contractRoute {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "routes.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []contractRoute
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 3 || (cols[2] != "served" && cols[2] != "debug") {
			t.Fatalf("routes.tsv: bad line %q", line)
		}
		out = append(out, contractRoute{path: cols[0], methods: strings.Split(cols[1], ","), debug: cols[2] == "debug"})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEveryContractRouteIsServed walks the 57 route files of the contract (plus the participants POST the browser
// calls) and fails if any listed path and method answers 404 or 405. Debug routes must answer 404.
func TestEveryContractRouteIsServed(t *testing.T) {
	routes := readContractRoutes(t)
	if len(routes) != 57 {
		t.Fatalf("parsed %d routes from the contract, want 57", len(routes))
	}
	srv := newTestServer(t, testServerConfig{SupabaseURL: deadSupabase, JWKSURL: deadSupabase + "/jwks"}).srv

	id := "00000000-0000-4000-8000-000000000000"
	params := regexp.MustCompile(`\[[A-Za-z]+\]`)
	checked := 0
	for _, rt := range routes {
		path := params.ReplaceAllString(rt.path, id)
		if strings.HasSuffix(rt.path, "[identifier]") {
			path = strings.Replace(rt.path, "[identifier]", "qryptchatABCD1234", 1)
		}
		for _, m := range rt.methods {
			req, _ := http.NewRequest(m, srv.URL+path, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", m, path, err)
			}
			res.Body.Close()
			checked++
			switch {
			case rt.debug && res.StatusCode != http.StatusNotFound:
				t.Errorf("%s %s (debug route) = %d, want 404", m, rt.path, res.StatusCode)
			case !rt.debug && (res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed):
				t.Errorf("%s %s = %d: not served", m, rt.path, res.StatusCode)
			}
		}
	}
	t.Logf("checked %d path/method pairs of %d route files", checked, len(routes))
}
