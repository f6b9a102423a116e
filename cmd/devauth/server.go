package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// Server is devauth: Auth endpoints under /auth/v1, the /rest/v1 proxy, and the gateway's apikey check.
type Server struct {
	cfg    Config
	log    *slog.Logger
	db     *pool
	proxy  http.Handler
	apiKey [2]string // anon, service_role
	now    func() time.Time
}

// newServer opens the database and creates devauth's own schema. auth.users is not required to exist yet: requests
// that need it fail until the schema is bootstrapped, the gateway and JWKS work regardless.
func newServer(ctx context.Context, cfg Config, logger *slog.Logger) (*Server, error) {
	db := newPool(cfg.DatabaseURL, 10)
	s := &Server{cfg: cfg, log: logger, db: db, apiKey: [2]string{devkeys.AnonKey(), devkeys.ServiceRoleKey()}, now: time.Now}
	initCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := migrate(initCtx, db); err != nil {
		db.close()
		return nil, fmt.Errorf("prepare schema devauth: %w", err)
	}
	s.proxy = s.newProxy()
	return s, nil
}

// Close releases the database pool.
func (s *Server) Close() error { s.db.close(); return nil }

// Handler returns the whole gateway.
func (s *Server) Handler() http.Handler {
	open := http.NewServeMux()
	open.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	open.HandleFunc("GET /auth/v1/.well-known/jwks.json", s.handleJWKS)
	open.HandleFunc("GET /auth/v1/.well-known/openid-configuration", s.handleOpenID)
	open.HandleFunc("POST /auth/v1/verify", s.handleVerify)

	keyed := http.NewServeMux()
	keyed.HandleFunc("POST /auth/v1/otp", s.handleOTP)
	keyed.HandleFunc("POST /auth/v1/token", s.handleToken)
	keyed.HandleFunc("GET /auth/v1/user", s.handleUser)
	keyed.HandleFunc("POST /auth/v1/logout", s.handleLogout)
	keyed.HandleFunc("GET /auth/v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"version": "devauth", "name": "GoTrue", "description": "devauth is a development stand-in for Supabase Auth"})
	})
	keyed.HandleFunc("GET /auth/v1/settings", s.handleSettings)
	keyed.HandleFunc("GET /auth/v1/_dev/stats", s.handleStats)
	keyed.HandleFunc("/auth/v1/", func(w http.ResponseWriter, r *http.Request) {
		authError(w, http.StatusNotFound, "not_found", "devauth does not implement "+r.Method+" "+r.URL.Path)
	})
	keyed.Handle("/rest/v1/", s.proxy)
	keyed.HandleFunc("/storage/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "storage is not available on the local stack"})
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cors(w, r) {
			return
		}
		if h, pattern := open.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/auth/v1/") && !strings.HasPrefix(r.URL.Path, "/rest/v1/") &&
			!strings.HasPrefix(r.URL.Path, "/storage/v1/") {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "no Route matched with those values"})
			return
		}
		key := r.Header.Get("apikey")
		if key == "" {
			key = r.URL.Query().Get("apikey")
		}
		if key == "" {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "No API key found in request",
				"hint": "No `apikey` request header or url param was found."})
			return
		}
		if !s.validAPIKey(key) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Invalid API key",
				"hint": "Double check your Supabase `anon` or `service_role` API key."})
			return
		}
		keyed.ServeHTTP(w, r)
	})
}

func (s *Server) validAPIKey(k string) bool {
	ok := 0
	for _, want := range s.apiKey {
		ok |= subtle.ConstantTimeCompare([]byte(k), []byte(want))
	}
	return ok == 1
}

// cors answers preflight requests like the gateway's CORS plugin, and decorates the others. It reports whether the
// request was fully handled.
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

// newProxy forwards /rest/v1/* to PostgREST with the prefix stripped, streaming, as Kong does in the CLI stack.
// Like the hosted gateway, a request that carries only an apikey is forwarded with that key as its Bearer token.
func (s *Server) newProxy() http.Handler {
	if s.cfg.PostgRESTURL == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "POSTGREST_URL is not configured"})
		})
	}
	target, err := url.Parse(s.cfg.PostgRESTURL)
	if err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "POSTGREST_URL is invalid"})
		})
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, "/rest/v1")
			pr.Out.URL.RawPath = ""
			if raw := pr.In.URL.RawPath; raw != "" {
				pr.Out.URL.RawPath = strings.TrimPrefix(raw, "/rest/v1")
			}
			if pr.Out.URL.Path == "" {
				pr.Out.URL.Path = "/"
			}
			pr.SetURL(target)
			pr.SetXForwarded()
			if pr.Out.Header.Get("Authorization") == "" {
				if k := pr.In.Header.Get("apikey"); k != "" {
					pr.Out.Header.Set("Authorization", "Bearer "+k)
				}
			}
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("proxy to PostgREST failed", "err", err)
			writeJSON(w, http.StatusBadGateway, map[string]string{"message": "An invalid response was received from the upstream server"})
		},
	}
	return rp
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	body := devkeys.PublicJWKS()
	if s.cfg.ExtraJWKSFile != "" {
		if merged, err := mergeJWKS(body, s.cfg.ExtraJWKSFile); err != nil {
			s.log.Warn("DEVAUTH_EXTRA_JWKS_FILE ignored", "err", err)
		} else {
			body = merged
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=600")
	_, _ = w.Write(body)
}

// mergeJWKS appends the keys of an extra JWKS file (for key-rotation experiments) to the published set, dropping
// any private or symmetric material so the endpoint never leaks it.
func mergeJWKS(base []byte, path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var a, b struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(base, &a); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, err
	}
	for _, k := range b.Keys {
		if k["kty"] == "oct" {
			continue
		}
		for _, priv := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			delete(k, priv)
		}
		a.Keys = append(a.Keys, k)
	}
	return json.Marshal(a)
}

func (s *Server) handleOpenID(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=600")
	base := s.cfg.PublicURL
	if base == "" {
		base = strings.TrimSuffix(s.cfg.Issuer, "/auth/v1")
	}
	writeJSON(w, 200, map[string]any{
		"issuer": s.cfg.Issuer, "jwks_uri": base + "/auth/v1/.well-known/jwks.json",
		"id_token_signing_alg_values_supported": []string{"ES256"},
	})
}

func (s *Server) handleSettings(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{
		"external":           map[string]bool{"phone": true, "email": false, "anonymous_users": false},
		"disable_signup":     false,
		"mailer_autoconfirm": false,
		"phone_autoconfirm":  false,
		"sms_provider":       "devauth",
		"saml_enabled":       false,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// authError writes GoTrue's error body: {"code":<status>,"error_code":"<slug>","msg":"…"}.
func authError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Sb-Error-Code", code)
	writeJSON(w, status, map[string]any{"code": status, "error_code": code, "msg": msg})
}
