// Package middleware holds suparelay's cross-cutting HTTP layer: who is calling (Supabase Auth access tokens from
// `Authorization: Bearer` or the @supabase/ssr session cookie, verified locally against the project's JWKS or the
// legacy HS256 secret), cookie-session refresh, and the plain plumbing every route needs (request ids, panic
// recovery, access logs, body limits, security headers, the cross-site form guard and client-address resolution).
//
// Everything here has the chi shape `func(http.Handler) http.Handler`. Identity is split the wtf way:
// [Authenticator.Authenticate] identifies and never rejects on its own, [RequireAuth] enforces. Only a verified
// identity is ever put in the request context, and it leaves this package only through [IdentityFrom].
//
// The package imports nothing else of suparelay: the refresh-token exchange is behind the consumer-defined
// [Refresher] interface, which cmd/suparelay wires to the Supabase Auth client.
//
// What Verify accepts, PostgREST 12 accepts too: tokens are also checked for what PostgREST refuses and Go's JWT
// library does not (a "crit" header, duplicate JSON members, iat beyond IssuedAtSkew, invalid UTF-8, non-canonical
// base64url, malformed StringOrURI claims), so that a token never passes here only to fail in the database;
// TestVerifierMatchesPostgREST holds the cases against the real PostgREST. When the browser sends the session
// cookie more than once (another domain's or path's copy), each candidate session is tried in order.
//
// Contract: auth.md of the project contract (caller resolution §3, cookie format §4, refresh §7, 401 bodies §10).
package middleware
