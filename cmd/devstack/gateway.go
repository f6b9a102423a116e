package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// upstream is one service behind the gateway: requests under prefix go to target with the prefix removed.
type upstream struct {
	prefix string // "/auth/v1"
	name   string
	proxy  http.Handler
	keyed  bool // the gateway demands an API key, as Kong does for Auth and PostgREST
}

// gateway is the local stand-in for the Kong gateway of a Supabase project: one URL that serves /auth/v1 (Supabase
// Auth), /rest/v1 (PostgREST) and /storage/v1 (Storage). Like Kong it asks for a known apikey on Auth and PostgREST
// (except Auth's open routes), forwards a request that has only an apikey with that key as its Bearer token, leaves
// Storage to authenticate for itself, and answers CORS preflights.
type gateway struct {
	log       *slog.Logger
	upstreams []upstream
	apiKeys   [2]string
}

// openAuthPaths are Auth routes Kong serves without an API key: links opened from messages, the OAuth dance and
// the signing keys.
var openAuthPaths = map[string]bool{
	"/verify": true, "/callback": true, "/authorize": true, "/.well-known/jwks.json": true, "/health": true,
}

func newGateway(log *slog.Logger, authURL, restURL, storageURL string) (*gateway, error) {
	g := &gateway{log: log, apiKeys: [2]string{devkeys.AnonKey(), devkeys.ServiceRoleKey()}}
	for _, u := range []struct {
		prefix, name, target string
		keyed                bool
	}{
		{"/auth/v1", "auth", authURL, true},
		{"/rest/v1", "rest", restURL, true},
		{"/storage/v1", "storage", storageURL, false},
	} {
		if u.target == "" {
			continue
		}
		target, err := url.Parse(u.target)
		if err != nil || target.Host == "" {
			return nil, fmt.Errorf("%s upstream %q is not a URL", u.name, u.target)
		}
		g.upstreams = append(g.upstreams, upstream{prefix: u.prefix, name: u.name, keyed: u.keyed,
			proxy: g.reverseProxy(u.prefix, u.name, target)})
	}
	return g, nil
}

func (g *gateway) reverseProxy(prefix, name string, target *url.URL) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, prefix)
			pr.Out.URL.RawPath = strings.TrimPrefix(pr.In.URL.RawPath, prefix)
			if pr.Out.URL.Path == "" {
				pr.Out.URL.Path = "/"
			}
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host // Storage and Auth build absolute URLs from the public host
			if pr.Out.Header.Get("Authorization") == "" {
				if k := apiKeyOf(pr.In); k != "" {
					pr.Out.Header.Set("Authorization", "Bearer "+k)
				}
			}
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.log.Warn("upstream failed", "upstream", name, "path", r.URL.Path, "err", err)
			writeJSON(w, http.StatusBadGateway, map[string]string{"message": "An invalid response was received from the upstream server"})
		},
	}
}

func apiKeyOf(r *http.Request) string {
	if k := r.Header.Get("apikey"); k != "" {
		return k
	}
	return r.URL.Query().Get("apikey")
}

func (g *gateway) validKey(k string) bool {
	ok := 0
	for _, want := range g.apiKeys {
		ok |= subtle.ConstantTimeCompare([]byte(k), []byte(want))
	}
	return ok == 1
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	if cors(w, r) {
		return
	}
	for _, u := range g.upstreams {
		rest, ok := strings.CutPrefix(r.URL.Path, u.prefix)
		if !ok || (rest != "" && rest[0] != '/') {
			continue
		}
		if u.keyed && !(u.name == "auth" && openAuthPaths[rest]) {
			k := apiKeyOf(r)
			if k == "" {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "No API key found in request",
					"hint": "No `apikey` request header or url param was found."})
				return
			}
			if !g.validKey(k) {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Invalid API key",
					"hint": "Double check your Supabase `anon` or `service_role` API key."})
				return
			}
		}
		u.proxy.ServeHTTP(w, r)
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "no Route matched with those values"})
}

// cors answers preflight requests as the gateway's CORS plugin does and decorates the other answers. It reports
// whether the request was fully handled.
func cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", "3600")
	w.WriteHeader(http.StatusOK)
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func runGateway(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:54321", "listen address")
	authURL := fs.String("auth", "", "Supabase Auth base URL (served at /auth/v1)")
	restURL := fs.String("rest", "", "PostgREST base URL (served at /rest/v1)")
	storageURL := fs.String("storage", "", "Supabase Storage base URL (served at /storage/v1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	g, err := newGateway(log, *authURL, *restURL, *storageURL)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("gateway listening", "addr", ln.Addr().String(), "auth", *authURL, "rest", *restURL, "storage", *storageURL)
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
