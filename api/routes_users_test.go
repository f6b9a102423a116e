package api_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestUserRoutes covers /api/users/search, /api/users/by-id/{identifier}, /api/user/profile,
// /api/user/profile/{userId} and /api/profile/update (routes.md §4.1–4.5).
func TestUserRoutes(t *testing.T) {
	h := newHarness(t)

	t.Run("search", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me, target := testenv.NewUser(t), testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		wantErr(t, h.do("GET", "/api/users/search?q=x", "", nil), 401, "Unauthorized")
		for _, q := range []string{"", "%20%20", ""} {
			wantBody(t, h.do("GET", "/api/users/search?q="+q, tok, nil), 200, `{"users":[]}`)
		}
		wantBody(t, h.do("GET", "/api/users/search", tok, nil), 200, `{"users":[]}`)
		r := h.do("GET", "/api/users/search?q="+url.QueryEscape(" "+strings.ToUpper(target.Username)+" "), tok, nil)
		mustStatus(t, r, 200)
		users := r.JSON(t)["users"].([]any)
		if len(users) == 0 {
			t.Fatalf("search for %s found nothing: %s", target.Username, r.Body)
		}
		first := users[0].(map[string]any)
		if keysOf(first) != "avatar_url,display_name,id,phone_partial,unique_identifier,username" || first["id"] != target.ID {
			t.Fatalf("best hit: %v", first)
		}
		if want := "***-***-" + target.Phone[len(target.Phone)-4:]; first["phone_partial"] != want {
			t.Fatalf("phone_partial = %v, want %s", first["phone_partial"], want)
		}
		if strings.Contains(string(r.Body), target.Phone) || strings.Contains(string(r.Body), "phone_number") {
			t.Fatalf("search leaks phone numbers: %s", r.Body)
		}
		// The caller is never listed, searching for themselves included.
		r = h.do("GET", "/api/users/search?q="+me.Username, tok, nil)
		mustStatus(t, r, 200)
		for _, u := range r.JSON(t)["users"].([]any) {
			if u.(map[string]any)["id"] == me.ID {
				t.Fatalf("caller listed: %s", r.Body)
			}
		}
		// At most 10; wildcard characters are literal.
		r = h.do("GET", "/api/users/search?q=t_", tok, nil)
		mustStatus(t, r, 200)
		if n := len(r.JSON(t)["users"].([]any)); n > 10 {
			t.Fatalf("%d results, want at most 10", n)
		}
		wantBody(t, h.do("GET", "/api/users/search?q="+url.QueryEscape("%_%"), tok, nil), 200, `{"users":[]}`)
		r = h.do("GET", "/api/users/search?q="+strings.Repeat("a", 101), tok, nil)
		mustStatus(t, r, 400)
		checkClean(t, r)
	})

	t.Run("by-id", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me, target := testenv.NewUser(t), testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		ident := dbScalar[string](t, `select unique_identifier from users where id = $1`, target.ID)
		wantErr(t, h.do("GET", "/api/users/by-id/"+ident, "", nil), 401, "Unauthorized")
		for _, bad := range []string{"abc", "qryptchat123", "qryptchat1234567!", "xxxxxxxxxABCDEFGH", "qryptchatABCDEFGHI"} {
			wantBody(t, h.do("GET", "/api/users/by-id/"+url.PathEscape(bad), tok, nil), 400,
				`{"error":"Invalid identifier format","details":"Identifier must be in format qryptchat + 8 alphanumeric characters"}`)
		}
		wantBody(t, h.do("GET", "/api/users/by-id/qryptchatZZZZZZZZ", tok, nil), 404,
			`{"error":"User not found","details":"No user found with the provided identifier"}`)
		want := `{"success":true,"user":{"id":"` + target.ID + `","username":"` + target.Username + `","displayName":"` +
			target.Username + `","avatarUrl":null,"bio":null,"website":null}}`
		wantBody(t, h.do("GET", "/api/users/by-id/"+ident, tok, nil), 200, want)
		// The page lowercases what it got: the identifier is normalised.
		wantBody(t, h.do("GET", "/api/users/by-id/"+strings.ToLower(ident), tok, nil), 200, want)
	})

	t.Run("own profile", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me := testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		mustStatus(t, h.do("POST", "/api/auth/backup-pin", tok, map[string]any{"pin": "123456"}), 200)
		for _, p := range []string{"/api/user/profile", "/api/user/profile/" + me.AuthID} {
			wantErr(t, h.do("GET", p, "", nil), 401, "Not authenticated")
			wantErr(t, h.do("GET", p, testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), nil), 404, "Profile not found")
		}
		r := h.do("GET", "/api/user/profile", tok, nil)
		mustStatus(t, r, 200)
		row := r.JSON(t)
		if row["id"] != me.ID || row["username"] != me.Username || row["auth_user_id"] != me.AuthID {
			t.Fatalf("profile: %s", r.Body)
		}
		if strings.Contains(string(r.Body), "backup_pin") || strings.Contains(string(r.Body), "pbkdf2") {
			t.Fatalf("profile leaks the PIN hash: %s", r.Body)
		}
		// The parameter is ignored: the caller's own row, whatever it names.
		for _, param := range []string{me.AuthID, testenv.NewUser(t).ID, "anything"} {
			r := h.do("GET", "/api/user/profile/"+param, tok, nil)
			mustStatus(t, r, 200)
			if keysOf(r.JSON(t)) != "user" || r.JSON(t)["user"].(map[string]any)["id"] != me.ID {
				t.Fatalf("profile/%s: %s", param, r.Body)
			}
			if strings.Contains(string(r.Body), "backup_pin") {
				t.Fatalf("profile/{id} leaks the PIN hash: %s", r.Body)
			}
		}
	})

	t.Run("profile update", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me := testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		upd := func(body any) resp { return h.do("POST", "/api/profile/update", tok, body) }
		wantErr(t, h.do("POST", "/api/profile/update", "", map[string]any{"bio": "x"}), 401, "Missing or invalid authorization header")
		wantErr(t, h.do("POST", "/api/profile/update", me.Token(t, -time.Minute), map[string]any{"bio": "x"}), 401, "Invalid or expired token")
		wantErr(t, h.do("POST", "/api/profile/update", "not.a.jwt", map[string]any{"bio": "x"}), 401, "Invalid or expired token")
		wantErr(t, upd(map[string]any{"bio": 5}), 400, "Bio must be a string")
		wantErr(t, upd(map[string]any{"bio": []string{"x"}}), 400, "Bio must be a string")
		wantErr(t, upd(map[string]any{"website": true}), 400, "Website must be a string")
		wantErr(t, upd(map[string]any{"bio": strings.Repeat("é", 501)}), 400, "Bio must be 500 characters or less")
		for _, site := range []string{"not a url", "ftp://x.com", "http://", "example", "javascript:alert(1)", "http://x.c"} {
			wantErr(t, upd(map[string]any{"website": site}), 400, "Please enter a valid website URL")
		}
		want := func(bio, site string) string {
			q := func(s string) string {
				if s == "" {
					return "null"
				}
				return `"` + s + `"`
			}
			return `{"success":true,"user":{"id":"` + me.ID + `","username":"` + me.Username + `","displayName":"` + me.Username +
				`","avatarUrl":null,"bio":` + q(bio) + `,"website":` + q(site) + `}}`
		}
		wantBody(t, upd(map[string]any{"bio": "  Hello  ", "website": " https://Example.org/me_1 "}), 200, want("Hello", "https://Example.org/me_1"))
		wantBody(t, upd(map[string]any{"bio": strings.Repeat("é", 500)}), 200, want(strings.Repeat("é", 500), "https://Example.org/me_1"))
		// null, false and "" clear a field; an absent field stays.
		wantBody(t, upd(map[string]any{"bio": nil}), 200, want("", "https://Example.org/me_1"))
		wantBody(t, upd(map[string]any{"website": false}), 200, want("", ""))
		wantBody(t, upd(map[string]any{"website": "example.com"}), 200, want("", "example.com"))
		wantBody(t, upd(map[string]any{"website": "  "}), 200, want("", ""))
		wantErr(t, h.do("POST", "/api/profile/update", testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), map[string]any{"bio": "x"}),
			404, "Profile update failed - user not found or permission denied")
	})
}
