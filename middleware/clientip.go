package middleware

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address of the client that sent r. Forwarded headers are believed only when the direct peer
// (RemoteAddr) is inside trustedProxies: then X-Forwarded-For is walked from the right, skipping trusted proxies,
// and the first untrusted address is the client (the leftmost one if every hop is trusted); X-Real-IP is used when
// there is no X-Forwarded-For. Otherwise the peer address itself is returned, so a client cannot pick its own
// rate-limit bucket by sending headers.
//
// The result is unmapped (IPv4-in-IPv6 becomes IPv4). It is the zero netip.Addr only if RemoteAddr is unparsable;
// callers keying rate limits on it should treat that as one shared bucket (fail closed).
func ClientIP(r *http.Request, trustedProxies []netip.Prefix) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !peer.IsValid() || !inPrefixes(peer, trustedProxies) {
		return peer
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		hops := strings.Split(strings.Join(xff, ","), ",")
		var leftmost netip.Addr
		for i := len(hops) - 1; i >= 0; i-- {
			a := parseAddr(strings.TrimSpace(hops[i]))
			if !a.IsValid() {
				// Garbage in the chain: stop trusting it and use the last good hop we saw.
				break
			}
			leftmost = a
			if !inPrefixes(a, trustedProxies) {
				return a
			}
		}
		if leftmost.IsValid() {
			return leftmost
		}
		return peer
	}
	if a := parseAddr(strings.TrimSpace(r.Header.Get("X-Real-IP"))); a.IsValid() {
		return a
	}
	return peer
}

// clientIPKey is the context key of the address ResolveClientIP found.
type clientIPKey struct{}

// ResolveClientIP computes ClientIP(r, trustedProxies) once, at the edge, and keeps it in the request's context, so
// that everything further in (the access log, which cannot know the proxy list, the rate limits, the handlers) can
// use the same answer through ClientIPFrom instead of each re-deriving it with settings that might differ. Put it
// outermost.
func ResolveClientIP(trustedProxies []netip.Prefix) func(http.Handler) http.Handler {
	ps := append([]netip.Prefix(nil), trustedProxies...)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := ClientIP(r, ps)
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey{}, a)))
		})
	}
}

// ClientIPFrom returns the address ResolveClientIP stored in ctx, and false when it did not run.
func ClientIPFrom(ctx context.Context) (netip.Addr, bool) {
	a, ok := ctx.Value(clientIPKey{}).(netip.Addr)
	return a, ok
}

// parseAddr accepts "ip", "ip:port" and "[ipv6]:port".
func parseAddr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
