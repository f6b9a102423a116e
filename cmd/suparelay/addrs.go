package main

// Where the server binds (LISTEN_ADDR, PORT) and where its Redis keys live (REDIS_PREFIX).

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// listenAddr turns LISTEN_ADDR and PORT into the address the server binds. LISTEN_ADDR may be empty (every
// interface, as before the variable existed), a host ("127.0.0.1", "::1", "localhost": PORT is the port) or a
// host:port ("127.0.0.1:8080", "[::1]:8080", ":8080": the port there wins over PORT, and 0 asks the kernel for a
// free one). The host must be an IP literal or a plain DNS name: anything else is a typo better refused at start-up
// than found as "listening on the wrong interface".
func listenAddr(v string, port int) (string, error) {
	if v == "" {
		return net.JoinHostPort("", strconv.Itoa(port)), nil
	}
	host, p, err := net.SplitHostPort(v)
	if err != nil {
		// No port: the whole value is the host. A bare IPv6 literal lands here too ("::1" has too many colons).
		host, p = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]"), strconv.Itoa(port)
	} else {
		n, perr := strconv.Atoi(p)
		if perr != nil || n < 0 || n > 65535 {
			return "", fmt.Errorf("%q: port %q is not a TCP port", v, p)
		}
	}
	if host != "" && !validHost(host) {
		return "", fmt.Errorf("%q is not an IP address or host name, optionally with :port", v)
	}
	return net.JoinHostPort(host, p), nil
}

// validHost accepts IP literals (without a zone) and DNS names of letters, digits, '-' and '.'.
func validHost(h string) bool {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Zone() == ""
	}
	if len(h) > 253 || strings.HasPrefix(h, ".") || strings.Contains(h, "..") {
		return false
	}
	for _, c := range h {
		if !(c == '-' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// redisPrefixOK refuses prefixes that would break the key layout: braces would start or end a Redis Cluster hash
// tag inside the prefix (keys that must meet in one script carry their own tag after it), and spaces or control
// characters make keys that redis-cli users cannot type. Length is capped so that keys stay short.
func redisPrefixOK(p string) error {
	if len(p) > 64 {
		return errors.New("longer than 64 bytes")
	}
	for _, c := range p {
		if c <= ' ' || c == 0x7f || c == '{' || c == '}' {
			return fmt.Errorf("%q: no spaces, control characters or braces", p)
		}
	}
	return nil
}

// redisKeys is the key prefix of one part of the server under REDIS_PREFIX, so two deployments (or two test
// stacks) sharing a Redis keep their events, rooms, limits and locks apart. A Config built by hand (not through
// LoadConfig) gets the historical "suparelay:".
func (c Config) redisKeys(part string) string {
	if c.RedisPrefix == "" {
		return "suparelay:" + part
	}
	return c.RedisPrefix + part
}

// bindAddr is LISTEN_ADDR resolved by LoadConfig, or every interface on PORT for a Config built by hand.
func (c Config) bindAddr() string {
	if c.ListenAddr == "" {
		return net.JoinHostPort("", strconv.Itoa(c.Port))
	}
	return c.ListenAddr
}
