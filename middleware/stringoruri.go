package middleware

import (
	"net/netip"
	"strings"
)

// isStringOrURI implements RFC 7519 §2 "StringOrURI" the way PostgREST 12 reads iss, sub and aud: any string
// without a colon, otherwise an absolute URI per RFC 3986 (PostgREST refuses the whole token with
// JWTClaimsSetDecodeError when it is not one, so we must too, or we would accept tokens the database then refuses).
func isStringOrURI(s string) bool {
	return !strings.Contains(s, ":") || isAbsoluteURI(s)
}

// isAbsoluteURI checks RFC 3986 §3: scheme ":" hier-part [ "?" query ] [ "#" fragment ], ASCII only, every "%"
// followed by two hex digits, an authority of [userinfo "@"] host [":" port] with a numeric port and a host that is a
// bracketed IPv6 literal or a reg-name.
func isAbsoluteURI(s string) bool {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !isScheme(scheme) {
		return false
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		if !allURIChars(rest[i+1:], "/?") {
			return false
		}
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		if !allURIChars(rest[i+1:], "/?") {
			return false
		}
		rest = rest[:i]
	}
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		end := strings.IndexByte(after, '/')
		if end < 0 {
			end = len(after)
		}
		if !isAuthority(after[:end]) {
			return false
		}
		rest = after[end:]
	}
	return allURIChars(rest, "/")
}

func isScheme(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isAuthority(a string) bool {
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		if !allURIChars(a[:at], ":") || strings.ContainsAny(a[:at], "@") {
			return false
		}
		a = a[at+1:]
	}
	host, port := a, ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 || !isIPLiteral(a[1:end]) {
			return false
		}
		host, port = "", a[end+1:]
		if port != "" {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
		}
	} else if i := strings.IndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i+1:]
	}
	for i := 0; i < len(port); i++ {
		if !isDigit(port[i]) {
			return false
		}
	}
	return allURIChars(host, "") // reg-name: unreserved, pct-encoded, sub-delims
}

// isIPLiteral: an IPv6 address without zone. RFC 3986 also allows IPvFuture ("[v1.x]"), but PostgREST 12 refuses
// it (measured by TestVerifierMatchesPostgREST), so we do too.
func isIPLiteral(s string) bool {
	ip, err := netip.ParseAddr(s)
	return err == nil && ip.Is6() && ip.Zone() == ""
}

// allURIChars reports whether s consists of unreserved characters, sub-delims, ":" "@" (pchar), the extra bytes
// given, and well-formed percent escapes.
func allURIChars(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlpha(c) || isDigit(c) || strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0:
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		case strings.IndexByte(extra, c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
