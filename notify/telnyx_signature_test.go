package notify

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

type telnyxFixture struct {
	priv   ed25519.PrivateKey
	bare   string // base64 of the 32-byte key
	pemKey string
	derB64 string
}

func newTelnyxFixture(t testing.TB) telnyxFixture {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return telnyxFixture{
		priv:   priv,
		bare:   base64.StdEncoding.EncodeToString(pub),
		pemKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		derB64: base64.StdEncoding.EncodeToString(der),
	}
}

func (f telnyxFixture) sign(ts string, body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(f.priv, append([]byte(ts+"|"), body...)))
}

func TestVerifyTelnyxSignature(t *testing.T) {
	t.Parallel()
	f := newTelnyxFixture(t)
	other := newTelnyxFixture(t)
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"data":{"event_type":"message.received","payload":{"text":"123456"}}}`)
	sig := f.sign(ts, body)
	at := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }

	tests := []struct {
		name         string
		key, sig, ts string
		body         []byte
		ok           bool
	}{
		{"bare base64 key", f.bare, sig, ts, body, true},
		{"PEM key", f.pemKey, sig, ts, body, true},
		{"DER base64 key", f.derB64, sig, ts, body, true},
		{"key with whitespace", "  " + f.bare + "\n", sig, ts, body, true},
		{"4m59s old", f.bare, f.sign(at(-299*time.Second), body), at(-299 * time.Second), body, true},
		{"4m59s ahead", f.bare, f.sign(at(299*time.Second), body), at(299 * time.Second), body, true},
		{"5m01s old", f.bare, f.sign(at(-301*time.Second), body), at(-301 * time.Second), body, false},
		{"5m01s ahead", f.bare, f.sign(at(301*time.Second), body), at(301 * time.Second), body, false},
		{"body changed", f.bare, sig, ts, append([]byte{' '}, body...), false},
		{"timestamp changed", f.bare, sig, at(time.Second), body, false},
		{"other key", other.bare, sig, ts, body, false},
		{"empty key", "", sig, ts, body, false},
		{"garbage key", "not a key!", sig, ts, body, false},
		{"empty signature", f.bare, "", ts, body, false},
		{"short signature", f.bare, base64.StdEncoding.EncodeToString([]byte("short")), ts, body, false},
		{"empty timestamp", f.bare, sig, "", body, false},
		{"non-numeric timestamp", f.bare, sig, "12a", body, false},
		{"huge timestamp", f.bare, sig, "99999999999999999999", body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyTelnyxSignature(tt.key, tt.sig, tt.ts, tt.body, now, 0)
			if got := err == nil; got != tt.ok {
				t.Fatalf("ok = %v (err %v), want %v", got, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("error %v does not wrap ErrInvalidSignature", err)
			}
		})
	}
}

func TestParseEd25519PublicKeyRejectsOtherTypes(t *testing.T) {
	t.Parallel()
	// A PEM that is valid SPKI but not Ed25519 must be refused: an X25519 key of the same size is the likely mix-up.
	der := []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00}
	der = append(der, make([]byte, 32)...)
	p := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if _, err := ParseEd25519PublicKey(p); err == nil {
		t.Fatal("X25519 key accepted")
	}
}

// FuzzVerifyTelnyxSignature feeds arbitrary key, signature and timestamp texts to the parser: it must never panic,
// and whenever it accepts, the inputs must really be a valid signature by that key (no parsing shortcut accepts).
func FuzzVerifyTelnyxSignature(f *testing.F) {
	fx := newTelnyxFixture(f)
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"a":1}`)
	f.Add(fx.bare, fx.sign(ts, body), ts, body)
	f.Add(fx.pemKey, fx.sign(ts, body), ts, body)
	f.Add(fx.derB64, fx.sign(ts, body), " "+ts, body)
	f.Add("-----BEGIN PUBLIC KEY-----\n", "", "0", []byte{})
	f.Add("AAAA", "====", "-1", []byte("x"))
	f.Fuzz(func(t *testing.T, key, sig, tsText string, body []byte) {
		err := VerifyTelnyxSignature(key, sig, tsText, body, now, 0)
		if err == nil {
			pub, perr := ParseEd25519PublicKey(key)
			if perr != nil {
				t.Fatalf("accepted with unparsable key: %v", perr)
			}
			raw, derr := decodeBase64(strings.TrimSpace(sig))
			if derr != nil || !ed25519.Verify(pub, append([]byte(strings.TrimSpace(tsText)+"|"), body...), raw) {
				t.Fatalf("accepted an invalid signature")
			}
		} else if !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("error %v does not wrap ErrInvalidSignature", err)
		}
	})
}
