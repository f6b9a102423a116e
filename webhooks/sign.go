package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignaturePrefix starts every X-Qrypt-Signature value; it names the algorithm so it can change later.
const SignaturePrefix = "sha256="

// MaxSignatureAge is the freshness window [Verify] applies.
const MaxSignatureAge = 5 * time.Minute

// ErrBadSignature is returned by [Verify] for any mismatch, malformed header or stale timestamp.
var ErrBadSignature = errors.New("webhook signature mismatch")

// Sign returns the X-Qrypt-Signature value for a delivery: "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." +
// body)), where timestamp is the exact X-Qrypt-Timestamp header text.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return SignaturePrefix + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a received delivery the way the package documentation describes (constant-time comparison,
// timestamp within [MaxSignatureAge] of now).
func Verify(secret []byte, signature, timestamp string, body []byte, now time.Time) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	age := now.Unix() - ts
	if age < 0 {
		age = -age
	}
	if age > int64(MaxSignatureAge/time.Second) {
		return ErrBadSignature
	}
	if !strings.HasPrefix(signature, SignaturePrefix) {
		return ErrBadSignature
	}
	want := Sign(secret, timestamp, body)
	if !hmac.Equal([]byte(signature), []byte(want)) {
		return ErrBadSignature
	}
	return nil
}
