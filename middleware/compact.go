package middleware

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Refusals of checkCompact, wrapped; the text goes to the log only.
var (
	errTokenShape   = errors.New("not three base64url segments")
	errCritHeader   = errors.New(`JOSE header has "crit"`)
	errHeaderParam  = errors.New("JOSE header parameter not accepted")
	errHeaderType   = errors.New("JOSE header parameter of the wrong type")
	strictBase64URL = base64.RawURLEncoding.Strict()
)

// headerStrings are the JOSE header parameters Supabase Auth writes (alg, kid, typ) plus cty; each must be a string
// when present (PostgREST refuses e.g. a numeric typ or cty).
var headerStrings = [...]string{"alg", "kid", "typ", "cty"}

// headerRefused are the registered JWS/JWE header parameters that change how a token is read or name key material
// (RFC 7515 §4.1, RFC 7516 §4.1, RFC 7797): Supabase Auth never sends them and we implement none of them, so a token
// carrying one is not a token we understand. "crit" is refused separately and always: RFC 7515 §4.1.11 says a
// recipient that does not understand a listed extension MUST reject the token, we understand none, and PostgREST 12
// refuses every "crit" (even an empty or null one).
var headerRefused = [...]string{"jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "b64", "zip", "enc", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c"}

// checkCompact refuses tokens that PostgREST would refuse for their form before any signature is checked: anything
// but three non-empty segments of the base64url alphabet (Go's decoder would skip CR and LF, which then cannot be
// sent on to PostgREST in a header), segments that are not canonical unpadded base64url, a header or payload that
// is not strict JSON (see checkStrictJSON: duplicate members, invalid UTF-8, …), a "crit" header, the header
// parameters of headerRefused, and header strings of another type. The signature's canonical form is checked by
// the jwt parser (WithStrictDecoding).
func checkCompact(token string) error {
	if strings.Count(token, ".") != 2 {
		return errTokenShape
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' && c != '.' {
			return errTokenShape
		}
	}
	h, rest, _ := strings.Cut(token, ".")
	p, sig, _ := strings.Cut(rest, ".")
	if h == "" || p == "" || sig == "" {
		return errTokenShape
	}
	header, err := strictBase64URL.DecodeString(h)
	if err != nil {
		return fmt.Errorf("header: %w", errTokenShape)
	}
	if err := checkStrictJSON(header, checkHeaderParam); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	payload, err := strictBase64URL.DecodeString(p)
	if err != nil {
		return fmt.Errorf("payload: %w", errTokenShape)
	}
	if err := checkStrictJSON(payload, nil); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	return nil
}

// checkHeaderParam applies the header rules to one member of the header (first is the first byte of its value).
func checkHeaderParam(name []byte, first byte) error {
	if string(name) == "crit" {
		return errCritHeader
	}
	for _, r := range headerRefused {
		if string(name) == r {
			return fmt.Errorf("%w: %q", errHeaderParam, r)
		}
	}
	for _, n := range headerStrings {
		if string(name) == n && first != '"' {
			return fmt.Errorf("%w: %q", errHeaderType, n)
		}
	}
	return nil
}
