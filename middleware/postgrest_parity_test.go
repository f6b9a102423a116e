package middleware

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestVerifierMatchesPostgREST sends every edge-case token (edgetokens_test.go), signed with the stack's ES256 key
// and HS256 secret, both to the REAL PostgREST 12 of the test stack and to our verifier (keys from the stack's
// Supabase Auth JWKS), and asserts that we refuse every token PostgREST refuses and accept every token it accepts,
// except the cases marked stricter (each says why). It also pins what PostgREST does with each case, so a PostgREST
// upgrade that changes its rules shows up here.
func TestVerifierMatchesPostgREST(t *testing.T) {
	pgrst := testenv.PostgRESTURL(t)
	v, err := NewVerifier(t.Context(), VerifierConfig{
		JWKSURL:     testenv.SupabaseURL(t) + "/auth/v1/.well-known/jwks.json",
		HS256Secret: devkeys.JWTSecret, Issuer: testIssuer, Logger: quietLog, CacheSize: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Ready(); err != nil {
		t.Fatalf("stack JWKS: %v", err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	ask := func(t *testing.T, token string) (pgOutcome, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, pgrst+"/users?select=id&limit=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("PostgREST: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(b, &e)
		switch {
		case resp.StatusCode < 300:
			return pgAccepts, ""
		case (resp.StatusCode == 401 || resp.StatusCode == 403) && strings.HasPrefix(e.Code, "PGRST3"):
			return pgRefuses, string(b)
		default:
			return pgErrors, string(b)
		}
	}
	s := edgeSigner{ec: devkeys.PrivateKey(), kid: devkeys.KID, secret: []byte(devkeys.JWTSecret)}
	var accepted, refused, stricter int
	for _, tc := range edgeCases(t, s, testIssuer) {
		t.Run(tc.name, func(t *testing.T) {
			got, body := ask(t, tc.token)
			_, verr := v.Verify(t.Context(), tc.token)
			weRefuse := verr != nil
			if got != tc.pg {
				t.Errorf("PostgREST %s (%s), the table says %s", got, body, tc.pg)
			}
			switch {
			case got != pgAccepts && !weRefuse:
				t.Errorf("PostgREST %s (%s) but we ACCEPT it", got, body)
			case got == pgAccepts && weRefuse && tc.stricter == "":
				t.Errorf("PostgREST accepts, we refuse (%v), and the case does not say why", verr)
			case got == pgAccepts && !weRefuse && tc.refuse:
				t.Errorf("we accept, the table says we refuse")
			}
			switch {
			case got == pgAccepts && weRefuse:
				stricter++
			case weRefuse:
				refused++
			default:
				accepted++
			}
		})
	}
	t.Logf("edge tokens: %d accepted by both, %d refused by both, %d refused by us only (stricter by design)",
		accepted, refused, stricter)
}
