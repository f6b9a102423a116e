package notify

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTelnyxMaxSkew is how far a webhook's timestamp may be from our clock (routes.md §9.5: more than 5 minutes
// off is rejected). It bounds the replay window of a captured request.
const DefaultTelnyxMaxSkew = 5 * time.Minute

// ErrInvalidSignature is wrapped by every failure of [VerifyTelnyxSignature]; the route answers 401
// err "Invalid signature" for all of them and logs the wrapped detail.
var ErrInvalidSignature = errors.New("invalid signature")

// maxKeyInput bounds the key text we parse; a PEM Ed25519 public key is about 113 bytes.
const maxKeyInput = 4096

// ParseEd25519PublicKey accepts the forms Telnyx and operators use: the bare base64 of the 32-byte key (what the
// Telnyx portal shows), base64 of a DER SubjectPublicKeyInfo, or a PEM "PUBLIC KEY" block. Parse it once at boot
// to fail fast on a bad setting.
func ParseEd25519PublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty public key")
	}
	if len(s) > maxKeyInput {
		return nil, errors.New("public key too long")
	}
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		block, _ := pem.Decode([]byte(s))
		if block == nil {
			return nil, errors.New("malformed PEM public key")
		}
		der = block.Bytes
	} else {
		raw, err := decodeBase64(s)
		if err != nil {
			return nil, errors.New("public key is not base64 or PEM")
		}
		if len(raw) == ed25519.PublicKeySize {
			return ed25519.PublicKey(raw), nil
		}
		der = raw
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("public key is not a valid SubjectPublicKeyInfo")
	}
	key, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("public key is not Ed25519")
	}
	return key, nil
}

// decodeBase64 accepts standard or URL alphabet, padded or not.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// VerifyTelnyxSignature checks a Telnyx webhook: signatureB64 (header telnyx-signature-ed25519) must be a valid
// Ed25519 signature by publicKey (bare base64 or PEM, see [ParseEd25519PublicKey]) over "<timestamp>|<body>", where
// timestamp (header telnyx-timestamp) is Unix seconds no more than maxSkew (0 = [DefaultTelnyxMaxSkew]) from now.
// body must be the raw request bytes as received. Every failure wraps [ErrInvalidSignature].
func VerifyTelnyxSignature(publicKey, signatureB64, timestamp string, body []byte, now time.Time, maxSkew time.Duration) error {
	key, err := ParseEd25519PublicKey(publicKey)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSignature, err)
	}
	return verifyTelnyx(key, signatureB64, timestamp, body, now, maxSkew)
}

// VerifyTelnyxSignatureKey is [VerifyTelnyxSignature] with a key parsed once by [ParseEd25519PublicKey].
func VerifyTelnyxSignatureKey(key ed25519.PublicKey, signatureB64, timestamp string, body []byte, now time.Time, maxSkew time.Duration) error {
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: bad public key size", ErrInvalidSignature)
	}
	return verifyTelnyx(key, signatureB64, timestamp, body, now, maxSkew)
}

func verifyTelnyx(key ed25519.PublicKey, signatureB64, timestamp string, body []byte, now time.Time, maxSkew time.Duration) error {
	if maxSkew <= 0 {
		maxSkew = DefaultTelnyxMaxSkew
	}
	timestamp = strings.TrimSpace(timestamp)
	if timestamp == "" || len(timestamp) > 20 {
		return fmt.Errorf("%w: missing or malformed timestamp", ErrInvalidSignature)
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || ts <= 0 {
		return fmt.Errorf("%w: malformed timestamp", ErrInvalidSignature)
	}
	// Compare in seconds to avoid overflowing time.Duration with absurd timestamps.
	skew := now.Unix() - ts
	if skew < 0 {
		skew = -skew
	}
	if skew > int64(maxSkew/time.Second) {
		return fmt.Errorf("%w: timestamp outside the allowed window", ErrInvalidSignature)
	}
	signatureB64 = strings.TrimSpace(signatureB64)
	if signatureB64 == "" || len(signatureB64) > 256 {
		return fmt.Errorf("%w: missing or malformed signature", ErrInvalidSignature)
	}
	sig, err := decodeBase64(signatureB64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: malformed signature", ErrInvalidSignature)
	}
	msg := make([]byte, 0, len(timestamp)+1+len(body))
	msg = append(append(append(msg, timestamp...), '|'), body...)
	if !ed25519.Verify(key, msg, sig) {
		return fmt.Errorf("%w: signature does not match", ErrInvalidSignature)
	}
	return nil
}
