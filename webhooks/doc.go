// Package webhooks delivers the user webhooks of routes.md §9.4: a POST of {"event","timestamp","data"} to each
// registered URL, signed, with a 10 s timeout, bounded retries and SSRF protection.
//
// # Delivery
//
// Deliveries wait in a [Store], not in the Deliverer: [NewRedisStore] keeps them in the Redis every node shares (a
// sorted set by next attempt time, and a lease per claimed delivery), so that the retry schedule survives restarts
// and the loss of any node; [NewMemoryStore], for a single node without Redis, loses them on shutdown or crash.
// [Deliverer.Enqueue] never waits for a receiver: when the store holds Config.QueueSize deliveries already, is
// unreachable, or the Deliverer is closed, it returns false and the delivery is dropped and counted; a body over
// Config.MaxPayloadBytes is refused.
//
// Every node's [Deliverer.Run] claims due deliveries, each for a lease (Config.LeaseTime, longer than one whole
// attempt), so one delivery is attempted by one node at a time. A node that dies mid-attempt leaves its lease to run
// out; the delivery is then due again for any node, that attempt counted (so a delivery that keeps killing its
// claimers still ends). Delivery is therefore at-least-once: a receiver may see a delivery more than once (a lost
// answer, a node lost after the receiver got it), always with the same X-Qrypt-Delivery id and the same body —
// de-duplicate on that id. [Deliverer.Shutdown] lets attempts in flight finish until its context ends and gives the
// rest back to the store, not counted.
//
// An attempt succeeds on any 2xx. Network errors, 408, 425, 429 and 5xx are retried with exponential backoff and
// jitter (Retry-After is honoured up to the backoff cap), up to Config.MaxAttempts attempts in all; other answers,
// including every 3xx (redirects are never followed), fail at once. A delivery that fails for good is dead: removed
// from the store, logged ("webhook delivery failed") and counted in suparelay_webhooks_failed_total.
//
// # What the receiver gets
//
//	POST <url>
//	Content-Type: application/json
//	User-Agent: QryptChat-Webhooks/1
//	X-Qrypt-Event: message.created
//	X-Qrypt-Delivery: <random id, the same on every attempt of one delivery: the idempotency key>
//	X-Qrypt-Attempt: 1                       (this attempt's number, on any node)
//	X-Qrypt-Timestamp: 1700000000            (Unix seconds of this attempt)
//	X-Qrypt-Signature: sha256=<hex>
//
//	{"event":"message.created","timestamp":"2023-11-14T22:13:20.000Z","data":{…}}
//
// # Verifying a delivery (receiver side)
//
//  1. Read the raw body bytes exactly as received (before any JSON parsing).
//  2. Compute HMAC-SHA256 with the shared secret (the server's WEBHOOK_SIGNING_SECRET, or the per-webhook secret
//     when one was issued) over the bytes: X-Qrypt-Timestamp, then ".", then the raw body.
//  3. Hex-encode it, prefix "sha256=", and compare with X-Qrypt-Signature in constant time
//     (hmac.Equal / crypto.timingSafeEqual).
//  4. Reject timestamps more than 5 minutes from your clock, so a captured request cannot be replayed later.
//
// [Sign] computes the header value and [Verify] implements steps 2–4 for Go receivers.
//
// # SSRF protection
//
// Only http and https URLs are contacted, through a dialer whose Control hook inspects the exact IP being
// connected to, after DNS resolution: loopback, private (RFC 1918, IPv6 ULA), link-local, unspecified, multicast,
// CGNAT (100.64.0.0/10), reserved ranges and IPv6 forms embedding such an IPv4 address are refused. Because the
// check is at dial time, DNS rebinding and names with several addresses cannot bypass it. Environment proxies are
// ignored. Config.AllowPrivate or Config.AllowNets lift the refusal (tests, or deliberate internal receivers).
// [ValidateURL] is the route's synchronous pre-check; it performs no DNS lookups.
package webhooks
