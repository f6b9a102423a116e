// Package devkeys holds the WELL-KNOWN, PUBLIC development signing keys of the local stack.
//
// DEVELOPMENT ONLY. These keys are committed on purpose, exactly as the supabase CLI ships well-known local keys:
// anything signed with them is forgeable by anyone who has read this file. They exist so that the Docker-free local
// stack (Supabase Auth, Storage and PostgREST of scripts/stack.sh, the tests) can issue and verify the same tokens without any
// secret. A production deployment never uses them: suparelay verifies tokens against the JWKS of the real project.
package devkeys

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"

	"github.com/golang-jwt/jwt/v5"
)

// KID is the key id of the development ES256 key, published in the local Supabase Auth's JWKS.
const KID = "suparelay-dev-es256-54f60529"

// JWTSecret is the supabase CLI's well-known legacy HS256 secret; the local anon and service-role keys are signed
// with it, and PostgREST accepts it besides the EC key.
const JWTSecret = "super-secret-jwt-token-with-at-least-32-characters-long"

// APIKeyExp is the far-future expiry the supabase CLI gives its local API keys.
const APIKeyExp = 1983812996

// privatePEM is the development ES256 (P-256) private key. PUBLIC: see the package comment.
const privatePEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVmemaqoxf3kY+Yep
fGicdG9+NWqtgfZC4C8sadGZMomhRANCAATyrYG79bJkpUxmOHgOqPJpaMebxZ0Z
CljGl92/ouIl3OGYOBMySFcHbtwzJoatNCRC7cBN/KzQlrM7J0hl+OBk
-----END PRIVATE KEY-----
`

// PrivateKey parses and returns the development ES256 key. It panics only if the constant above is corrupt, which a
// unit test rules out.
func PrivateKey() *ecdsa.PrivateKey {
	block, _ := pem.Decode([]byte(privatePEM))
	if block == nil {
		panic("devkeys: corrupt PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		panic("devkeys: " + err.Error())
	}
	return k.(*ecdsa.PrivateKey)
}

// PrivatePEM returns the development key in PKCS#8 PEM form.
func PrivatePEM() string { return privatePEM }

// JWK is one JSON Web Key in the fields Supabase publishes.
type JWK struct {
	Kty    string   `json:"kty"`
	Crv    string   `json:"crv,omitempty"`
	Alg    string   `json:"alg,omitempty"`
	Kid    string   `json:"kid,omitempty"`
	X      string   `json:"x,omitempty"`
	Y      string   `json:"y,omitempty"`
	K      string   `json:"k,omitempty"`
	Use    string   `json:"use,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	Ext    *bool    `json:"ext,omitempty"`
}

// PublicJWK returns the public half of an ECDSA P-256 key as Supabase Auth publishes it.
func PublicJWK(pub *ecdsa.PublicKey, kid string) JWK {
	return JWK{
		Kty: "EC", Crv: "P-256", Alg: "ES256", Kid: kid, Use: "sig", KeyOps: []string{"verify"},
		X: b64(pub.X, 32), Y: b64(pub.Y, 32),
	}
}

func b64(n *big.Int, size int) string {
	buf := make([]byte, size)
	return base64.RawURLEncoding.EncodeToString(n.FillBytes(buf))
}

// PublicJWKS returns the JWKS document the local Supabase Auth serves: public keys only.
func PublicJWKS() []byte {
	b, _ := json.Marshal(map[string][]JWK{"keys": {PublicJWK(&PrivateKey().PublicKey, KID)}})
	return b
}

// PostgRESTJWKS returns the JWK set given to PostgREST as its jwt-secret: the public EC key plus the HS256 secret as
// an "oct" key, so that PostgREST accepts both ES256 user tokens and the HS256 API keys, like the CLI stack.
func PostgRESTJWKS() []byte {
	ext := true
	oct := JWK{Kty: "oct", Alg: "HS256", K: base64.RawURLEncoding.EncodeToString([]byte(JWTSecret)), Ext: &ext}
	b, _ := json.Marshal(map[string][]JWK{"keys": {PublicJWK(&PrivateKey().PublicKey, KID), oct}})
	return b
}

// SignES256 signs claims with the development key and its kid, as Supabase Auth signs user access tokens.
func SignES256(claims jwt.MapClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = KID
	return t.SignedString(PrivateKey())
}

// SignHS256 signs claims with the legacy secret (no kid), as legacy projects and API keys are signed.
func SignHS256(claims jwt.MapClaims) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(JWTSecret))
}

func apiKey(role string) string {
	s, err := SignHS256(jwt.MapClaims{"iss": "supabase-demo", "role": role, "exp": APIKeyExp})
	if err != nil {
		panic(fmt.Sprintf("devkeys: signing %s key: %v", role, err))
	}
	return s
}

// AnonKey returns the local stack's anon API key (HS256, role anon), shaped like the CLI's.
func AnonKey() string { return apiKey("anon") }

// ServiceRoleKey returns the local stack's service-role API key (HS256, role service_role), shaped like the CLI's.
func ServiceRoleKey() string { return apiKey("service_role") }

// PrivateJWK is a private EC key in the JWK form Supabase Auth reads from GOTRUE_JWT_KEYS.
type PrivateJWK struct {
	JWK
	D string `json:"d"`
}

// SigningJWK returns the development key as Supabase Auth's signing key: the only key whose key_ops include
// "sign", with alg ES256 (a key without alg would make Auth sign HS256) and the kid tokens carry.
func SigningJWK() PrivateJWK {
	k := PrivateKey()
	pub := PublicJWK(&k.PublicKey, KID)
	pub.KeyOps = []string{"sign", "verify"}
	return PrivateJWK{JWK: pub, D: b64(k.D, 32)}
}

// TestOTP is the fixed one-time code of every test phone: Supabase Auth accepts it without sending an SMS.
const TestOTP = "123456"

// DemoPhones are the seeded demo users' numbers (supabase/seed.sql), as Supabase Auth stores them (no '+').
var DemoPhones = [...]string{"15555550101", "15555550102", "15555550103"}

// Test phone block: numbers TestPhonePrefix + 4 digits, TestPhoneCount of them, for tests that sign in through
// the real Supabase Auth by OTP. They are 11 digits long, so they never meet the 14-digit numbers tests create
// directly in the database.
const (
	TestPhonePrefix = "1555019"
	TestPhoneCount  = 2000
)

// TestPhone returns number i of the test block (no '+').
func TestPhone(i int) string { return fmt.Sprintf("%s%04d", TestPhonePrefix, i%TestPhoneCount) }

// TestOTPPhones returns every phone that accepts TestOTP: the demo users, then the test block.
func TestOTPPhones() []string {
	out := append([]string(nil), DemoPhones[:]...)
	for i := 0; i < TestPhoneCount; i++ {
		out = append(out, TestPhone(i))
	}
	return out
}
