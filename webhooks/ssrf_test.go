package webhooks

import (
	"errors"
	"net/netip"
	"testing"
)

func TestRefusedAddresses(t *testing.T) {
	t.Parallel()
	refused := []string{
		"127.0.0.1", "127.255.255.254", "::1", "0.0.0.0", "::", "10.1.2.3", "172.16.0.1", "172.31.255.255",
		"192.168.1.1", "169.254.169.254", "fe80::1", "224.0.0.1", "ff02::1", "ff01::1", "100.64.0.1",
		"100.127.255.255", "fc00::1", "fd12:3456::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1",
		"64:ff9b::7f00:1", "2002:7f00:1::", "2002:c0a8:101::1", "255.255.255.255", "240.0.0.1", "198.18.0.1",
		"192.0.0.8", "0.1.2.3", "2001:0::1", "64:ff9b:1::1",
	}
	allowed := []string{"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.32.0.1", "2606:4700::1111",
		"64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "93.184.216.34"}
	p := addressPolicy{}
	for _, s := range refused {
		if err := p.check(netip.MustParseAddr(s)); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s: err = %v, want refusal", s, err)
		}
	}
	for _, s := range allowed {
		if err := p.check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: err = %v, want allowed", s, err)
		}
	}
	if err := (addressPolicy{allow: loopback}).check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("allow-listed loopback refused: %v", err)
	}
	if err := (addressPolicy{allow: loopback}).check(netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Error("allow-list for loopback let 10.0.0.1 through")
	}
	if err := (addressPolicy{allowPrivate: true}).check(netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Errorf("AllowPrivate refused: %v", err)
	}
}

func TestControlParsesDialAddress(t *testing.T) {
	t.Parallel()
	p := addressPolicy{}
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": false, "[::1]:443": false, "[fe80::1%eth0]:80": false, "8.8.8.8:443": true,
		"[2606:4700::1111]:443": true, "garbage": false,
	} {
		err := p.control("tcp", addr, nil)
		if (err == nil) != ok {
			t.Errorf("control(%s) = %v, want ok=%v", addr, err, ok)
		}
	}
	if err := p.control("udp", "8.8.8.8:53", nil); err == nil {
		t.Error("udp allowed")
	}
}

func TestValidateURL(t *testing.T) {
	t.Parallel()
	valid := []string{"https://example.org/hook", "http://example.org:8080/a?b=c", "https://8.8.8.8/x",
		"https://[2606:4700::1111]/x", "https://hooks.example.co.uk/"}
	invalid := []string{"", "example.org", "ftp://example.org/", "javascript:alert(1)", "https://", "http:///x",
		"https://user:pw@example.org/", "http://127.0.0.1/", "http://localhost:3000/", "http://foo.localhost/",
		"http://10.0.0.1/", "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[fe80::1%25eth0]/",
		"http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://printer.local/", "https://example.org:0/",
		"https://example.org:99999/", " https://example.org/", "http://metadata.google.internal/", "http://100.64.1.1/",
		"http://[fd00::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0:80/"}
	for _, u := range valid {
		if err := ValidateURL(u); err != nil {
			t.Errorf("ValidateURL(%q) = %v, want nil", u, err)
		}
	}
	for _, u := range invalid {
		if err := ValidateURL(u); !errors.Is(err, ErrInvalidURL) {
			t.Errorf("ValidateURL(%q) = %v, want ErrInvalidURL", u, err)
		}
	}
}
