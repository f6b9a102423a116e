// Package supa talks to Supabase over HTTP: PostgREST (/rest/v1), Auth (/auth/v1) and Storage (/storage/v1).
//
// Why not supabase-go or postgrest-go: supabase-go's client keeps the user's token in shared state
// (UpdateAuthSession), so one user's query can be sent with another user's token when the client is shared; and
// every error of postgrest-go loses the HTTP status, the PostgREST code, details and hint, while the routes must map
// "no row" to 404, an RLS refusal to 403, a conflict to 409 and a bad value to 400. This package is the small typed
// client that keeps all of that: a Client is safe for concurrent use and never stores a user token; every call goes
// through a value-typed, token-scoped handle (Client.As) and every failure is a *Error with Status, Code, Message,
// Details and Hint.
//
// The service-role key is never handed out. Each operation that needs it is a named method of Client (see
// service.go) whose comment says why the user's own token cannot do it.
package supa
