package api_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qryptchat/suparelay/api"
	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dead := "http://127.0.0.1:1"
	client, _ := supa.New(supa.Config{URL: dead, AnonKey: devkeys.AnonKey()})
	verifier, err := middleware.NewVerifier(ctx, middleware.VerifierConfig{JWKSURL: dead + "/jwks", Audience: "authenticated", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := middleware.NewAuthenticator(middleware.AuthConfig{Verifier: verifier, Refresher: api.Refresher(client), CookieName: "sb-127-auth-token", Logger: log})
	hub := relay.NewHub(relay.NewMemoryBroker(relay.MemoryBrokerConfig{}), relay.HubConfig{}, log, prometheus.NewRegistry())
	srv := httptest.NewServer(api.New(api.Config{Supa: client, Hub: hub, Auth: auth, Verifier: verifier, Logger: log,
		CookieName: "sb-127-auth-token"}).Routes())
	defer srv.Close()

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
