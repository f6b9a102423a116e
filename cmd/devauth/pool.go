package main

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// pool is a minimal bounded pool of pgx connections. devauth serves a handful of requests per second at most; this
// keeps it off pgxpool, whose extra module the rest of the tree does not otherwise need.
type pool struct {
	url  string
	idle chan *pgx.Conn
	sem  chan struct{}
}

func newPool(url string, size int) *pool {
	return &pool{url: url, idle: make(chan *pgx.Conn, size), sem: make(chan struct{}, size)}
}

// with runs fn on a pooled connection. A connection that errored is closed rather than returned, so a broken
// connection (database restarted) heals on the next call.
func (p *pool) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.sem }()
	var c *pgx.Conn
	select {
	case c = <-p.idle:
	default:
		var err error
		if c, err = pgx.Connect(ctx, p.url); err != nil {
			return err
		}
	}
	err := fn(c)
	if err != nil && !isAppError(err) || c.IsClosed() || c.PgConn().TxStatus() != 'I' {
		c.Close(context.WithoutCancel(ctx))
		return err
	}
	select {
	case p.idle <- c:
	default:
		c.Close(context.WithoutCancel(ctx))
	}
	return err
}

// tx runs fn in a transaction on a pooled connection, committing when fn returns nil.
func (p *pool) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return p.with(ctx, func(c *pgx.Conn) error { return pgx.BeginFunc(ctx, c, fn) })
}

func (p *pool) close() {
	for {
		select {
		case c := <-p.idle:
			c.Close(context.Background())
		default:
			return
		}
	}
}

// apiError is an error that maps to a GoTrue error response; it does not taint the connection.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func isAppError(err error) bool {
	var ae *apiError
	return errors.As(err, &ae)
}
