package devkeys

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestKeysParseAndVerify(t *testing.T) {
	k := PrivateKey()
	tok, err := SignES256(jwt.MapClaims{"sub": "x", "exp": APIKeyExp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return &k.PublicKey, nil }, jwt.WithValidMethods([]string{"ES256"})); err != nil {
		t.Fatalf("verify: %v", err)
	}
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(PublicJWKS(), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks: %v %s", err, PublicJWKS())
	}
	if _, ok := set.Keys[0]["d"]; ok {
		t.Fatal("public JWKS leaks the private scalar")
	}
	if strings.Count(AnonKey(), ".") != 2 || AnonKey() == ServiceRoleKey() {
		t.Fatal("api keys malformed")
	}
}
