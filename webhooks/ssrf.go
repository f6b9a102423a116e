package webhooks

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrInvalidURL is returned by [ValidateURL] for anything the webhook route must refuse with 400 "Invalid URL".
var ErrInvalidURL = errors.New("invalid webhook URL")

// ErrForbiddenAddress is returned (wrapped) when a webhook target resolves to an address we refuse to contact.
var ErrForbiddenAddress = errors.New("webhook target address is not allowed")

// maxURLLength bounds stored and delivered URLs.
const maxURLLength = 2048

// ValidateURL is the route's synchronous check of a webhook URL (routes.md §9.4): absolute http or https, a host,
// no user-info, at most 2048 bytes, and — when the host is an IP literal or an obviously local name — not a
// refused address. It does no DNS lookup; names are checked again on every delivery at dial time, on the address
// actually connected to, so a name that later resolves to a private address (DNS rebinding) is still refused.
func ValidateURL(raw string) error {
	if raw == "" || len(raw) > maxURLLength || strings.TrimSpace(raw) != raw {
		return ErrInvalidURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ErrInvalidURL
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return ErrInvalidURL
	}
	if u.Opaque != "" || u.User != nil || u.Hostname() == "" {
		return ErrInvalidURL
	}
	if p := u.Port(); p != "" {
		if n, err := parsePort(p); err != nil || n == 0 {
			return ErrInvalidURL
		}
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || strings.HasSuffix(host, ".local") ||
		strings.HasSuffix(host, ".internal") || host == "metadata.google.internal" {
		return fmt.Errorf("%w: %w", ErrInvalidURL, ErrForbiddenAddress)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if reason := refusedReason(ip); reason != "" {
			return fmt.Errorf("%w: %w (%s)", ErrInvalidURL, ErrForbiddenAddress, reason)
		}
	} else {
		// Numeric forms some resolvers still accept ("2130706433", "0x7f.1", "127.1") are not host names: a real
		// top-level label is never numeric.
		last := host[strings.LastIndexByte(host, '.')+1:]
		if last == "" || strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") {
			return ErrInvalidURL
		}
	}
	return nil
}

func parsePort(p string) (int, error) {
	n := 0
	if len(p) > 5 {
		return 0, errors.New("bad port")
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, errors.New("bad port")
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, errors.New("bad port")
	}
	return n, nil
}

var (
	cgnat       = netip.MustParsePrefix("100.64.0.0/10")  // RFC 6598 shared address space
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")      // RFC 1122 "this network"
	ietfProto   = netip.MustParsePrefix("192.0.0.0/24")   // RFC 6890 protocol assignments
	benchmark   = netip.MustParsePrefix("198.18.0.0/15")  // RFC 2544 benchmarking
	reserved4   = netip.MustParsePrefix("240.0.0.0/4")    // reserved, includes broadcast
	nat64       = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052: embeds an IPv4 address
	nat64local  = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215 local-use NAT64
	sixToFour   = netip.MustParsePrefix("2002::/16")      // RFC 3056: embeds an IPv4 address
	teredo      = netip.MustParsePrefix("2001::/32")      // RFC 4380: tunnels to arbitrary IPv4
	discardOnly = netip.MustParsePrefix("100::/64")       // RFC 6666
)

// refusedReason says why ip must not be contacted, or "" when it is a public unicast address. IPv4 embedded in
// IPv6 (mapped, NAT64, 6to4) is judged by the embedded address.
func refusedReason(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		switch {
		case nat64.Contains(ip):
			b := ip.As16()
			return refusedReason(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixToFour.Contains(ip):
			b := ip.As16()
			return refusedReason(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		case nat64local.Contains(ip), teredo.Contains(ip), discardOnly.Contains(ip):
			return "tunnel or local-use IPv6"
		}
	}
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate(): // 10/8, 172.16/12, 192.168/16, fc00::/7 (ULA)
		return "private"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case cgnat.Contains(ip):
		return "CGNAT"
	case thisNetwork.Contains(ip), ietfProto.Contains(ip), benchmark.Contains(ip), reserved4.Contains(ip):
		return "reserved"
	case ip.Is6() && ip.As16()[0]&0xfe == 0xfc:
		return "private" // ULA, in case IsPrivate's definition ever narrows
	}
	return ""
}

// addressPolicy decides, at dial time, whether an address may be contacted.
type addressPolicy struct {
	allowPrivate bool
	allow        []netip.Prefix
}

func (p addressPolicy) check(ip netip.Addr) error {
	ip = ip.Unmap()
	if p.allowPrivate {
		return nil
	}
	for _, pre := range p.allow {
		if pre.Contains(ip) {
			return nil
		}
	}
	if reason := refusedReason(ip); reason != "" {
		return fmt.Errorf("%w: %s is %s", ErrForbiddenAddress, ip, reason)
	}
	return nil
}

// control is the net.Dialer Control hook: it runs after DNS resolution, just before connect(2), with the exact
// address being dialled, so neither a rebinding DNS answer nor a multi-address name can slip past the check.
func (p addressPolicy) control(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" && network != "tcp" {
		return fmt.Errorf("%w: network %s", ErrForbiddenAddress, network)
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbiddenAddress, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrForbiddenAddress, host)
	}
	return p.check(ip.WithZone(""))
}
