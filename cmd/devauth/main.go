// Command devauth is the DEVELOPMENT-ONLY stand-in for Supabase Auth (GoTrue) and the API gateway (Kong) of the
// local stack. It issues phone-OTP sessions shaped exactly like Supabase Auth's, signed with the well-known keys in
// internal/devkeys, keeps sessions and refresh tokens in Postgres (schema devauth) so several processes agree, and
// proxies /rest/v1/* to PostgREST so that its address behaves like a Supabase project URL.
//
// It is never part of a production deployment: anything it signs is forgeable by anyone who has read devkeys.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "devauth:", err)
		os.Exit(1)
	}
}

// run is main without the process globals, so that flags and configuration are testable.
func run(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("devauth", flag.ContinueOnError)
	addr := fs.String("addr", envOr(getenv, "DEVAUTH_ADDR", "127.0.0.1:54321"), "listen address (env DEVAUTH_ADDR)")
	printJWKS := fs.Bool("print-postgrest-jwks", false, "print the JWK set PostgREST needs as jwt-secret and exit")
	printKeys := fs.Bool("print-keys", false, "print the anon/service-role API keys and JWT secret as NAME=value lines and exit")
	demo := fs.String("demo-sessions", "", "sign in the demo users through the devauth at this base URL, print tokens and cookies, and exit")
	appURL := fs.String("app-url", "http://localhost:3000", "with -demo-sessions: the app URL used in the sample curl lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *printJWKS:
		_, err := fmt.Fprintln(stdout, string(devkeys.PostgRESTJWKS()))
		return err
	case *printKeys:
		_, err := fmt.Fprintf(stdout, "SUPABASE_ANON_KEY=%s\nSUPABASE_SERVICE_ROLE_KEY=%s\nSUPABASE_JWT_SECRET=%s\n",
			devkeys.AnonKey(), devkeys.ServiceRoleKey(), devkeys.JWTSecret)
		return err
	case *demo != "":
		return printDemoSessions(ctx, stdout, *demo, *appURL)
	}

	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv, err := newServer(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer srv.Close()

	hs := &http.Server{Addr: *addr, Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	logger.Info("devauth listening", "addr", *addr, "issuer", cfg.Issuer, "postgrest", cfg.PostgRESTURL)
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(shutdownCtx)
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
