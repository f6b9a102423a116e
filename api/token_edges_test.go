package api_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
)

// signRaw signs header and payload texts exactly as given with the stack's ES256 key (duplicates survive).
func signRaw(t testing.TB, header, payload string) string {
	t.Helper()
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodES256.Sign(in, devkeys.PrivateKey())
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestTokenEdgesAre401: the tokens of issue 11 that suparelay used to accept and PostgREST refuses (iat a year
// ahead, an unknown crit header, sub twice) get a clean 401 JSON on a route that reads the profile through
// PostgREST (it answered 500 "Failed to fetch profile") and on /api/events (it opened a stream), from the Bearer
// header and from the session cookie alike. And a second session cookie beside a valid one no longer gives 401.
func TestTokenEdgesAre401(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	me, other := testenv.NewUser(t), testenv.NewUser(t)
	header := `{"alg":"ES256","kid":"` + devkeys.KID + `","typ":"JWT"}`
	payload := func(mod func(jwt.MapClaims)) string {
		c := testenv.UserClaims(me, time.Hour)
		if mod != nil {
			mod(c)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	good := payload(nil)
	tokens := map[string]string{
		"iat a year ahead": signRaw(t, header, payload(func(c jwt.MapClaims) { c["iat"] = time.Now().AddDate(1, 0, 0).Unix() })),
		"unknown crit":     signRaw(t, `{"alg":"ES256","kid":"`+devkeys.KID+`","crit":["x-ext"],"x-ext":1}`, good),
		// PostgREST reads the first sub (me), Go's JSON the last (other).
		"sub twice": signRaw(t, header, strings.TrimSuffix(good, "}")+`,"sub":"`+other.AuthID+`"}`),
	}
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := h.as(t)
			sess, _ := json.Marshal(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 3600,
				"expires_at": time.Now().Add(time.Hour).Unix(), "refresh_token": "rt-" + testenv.RandomHex(6),
				"user": map[string]any{"id": me.AuthID}})
			wantErr(t, h.do("GET", "/api/user/profile", tok, nil), 401, "Not authenticated")
			wantErr(t, h.withCookie("GET", "/api/user/profile", cookieValue(sess), nil), 401, "Not authenticated")
			wantErr(t, h.do("GET", "/api/events", tok, nil), 401, "Unauthorized")
			wantErr(t, h.withCookie("GET", "/api/events", cookieValue(sess), nil), 401, "Unauthorized")
		})
	}
	t.Run("second session cookie beside a valid one", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		foreign := cookieName + "=" + cookieValue(sessionJSON(t, testenv.User{AuthID: other.AuthID}, time.Hour))
		foreign = foreign[:len(foreign)-8] + "AAAAAAAA" // a session that does not decode or verify here
		mine := cookieName + "=" + cookieValue(sessionJSON(t, me, time.Hour))
		for _, cookies := range []string{foreign + "; " + mine, mine + "; " + foreign} {
			r := h.rawReq("GET", "/api/user/profile", "", "", nil, "Cookie", cookies)
			mustStatus(t, r, 200)
			if r.JSON(t)["id"] != me.ID {
				t.Fatalf("profile: %s", r.Body)
			}
		}
	})
}
