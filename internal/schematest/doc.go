// Package schematest holds the integration tests of the database schema: the migrations applied to throwaway
// databases on the stack's PostgreSQL server, and the row-level security and RPC hardening exercised through the
// stack's real PostgREST with real tokens. It has no non-test code besides this comment.
package schematest
