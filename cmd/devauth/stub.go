package main

import (
	"context"
	"errors"
	"github.com/jackc/pgx/v5"
	"io"
	"net/http"
)

func migrate(ctx context.Context, db *pool) error {
	return db.with(ctx, func(c *pgx.Conn) error { return c.Ping(ctx) })
}

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	authError(w, 501, "todo", "todo")
}
func (s *Server) handleOTP(w http.ResponseWriter, r *http.Request) { authError(w, 501, "todo", "todo") }
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	authError(w, 501, "todo", "todo")
}
func (s *Server) handleUser(w http.ResponseWriter, r *http.Request) {
	authError(w, 501, "todo", "todo")
}
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	authError(w, 501, "todo", "todo")
}
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	authError(w, 501, "todo", "todo")
}
func printDemoSessions(ctx context.Context, w io.Writer, base, app string) error {
	return errors.New("todo")
}
