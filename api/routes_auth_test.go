package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// setCookies returns the Set-Cookie headers of r for the session cookie (any chunk).
func setCookies(r resp) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if strings.HasPrefix(c.Name, cookieName) {
			out = append(out, c)
		}
	}
	return out
}

// cleared reports whether r deletes the session cookie.
func cleared(r resp) bool {
	for _, c := range setCookies(r) {
		if c.Name == cookieName && c.Value == "" && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

// TestSendSMS covers POST /api/auth/send-sms (routes.md §3.6). Its per-IP limiter (5 per minute) lives in the
// server, so each group of requests uses its own harness.
func TestSendSMS(t *testing.T) {
	t.Run("validation and the per-IP limit", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		wantErr(t, h.do("POST", "/api/auth/send-sms", "", map[string]any{}), 400, "Phone number is required")
		wantErr(t, h.do("POST", "/api/auth/send-sms", "", map[string]any{"phoneNumber": ""}), 400, "Phone number is required")
		// Public: a dead Bearer changes nothing.
		wantErr(t, h.do("POST", "/api/auth/send-sms", "dead.token.x", map[string]any{"phoneNumber": 0}), 400, "Phone number is required")
		wantBody(t, h.do("POST", "/api/auth/send-sms", "", map[string]any{"phoneNumber": "15551234567"}), 400,
			`{"error":"Invalid phone number format. Please use E.164 format (e.g., +1234567890)",`+
				`"suggestion":"Ensure your phone number starts with + and includes country code"}`)
		wantBody(t, h.do("POST", "/api/auth/send-sms", "", map[string]any{"phoneNumber": 15551234567}), 500,
			`{"error":"Internal server error","code":"INTERNAL_ERROR"}`)
		before := time.Now().Unix()
		r := h.do("POST", "/api/auth/send-sms", "", map[string]any{"phoneNumber": "+15551234567"})
		wantErr(t, r, 429, "Too many requests. Please try again later.")
		retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || retry < 1 || retry > 60 {
			t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
		}
		reset, err := strconv.ParseInt(r.Header.Get("X-RateLimit-Reset"), 10, 64)
		if err != nil || reset < before || reset > before+61 || r.Header.Get("X-RateLimit-Remaining") != "0" {
			t.Fatalf("rate headers: %v", r.Header)
		}
	})

	t.Run("more invalid formats", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		for _, p := range []string{"+0123456", "+1", "+1234567890123456", "+1 555 123"} {
			r := h.do("POST", "/api/auth/send-sms", "", map[string]any{"phoneNumber": p})
			mustStatus(t, r, 400)
			if r.Err(t) != "Invalid phone number format. Please use E.164 format (e.g., +1234567890)" {
				t.Fatalf("%s: %s", p, r.Body)
			}
		}
		wantErr(t, h.rawReq("POST", "/api/auth/send-sms", "", "application/json", []byte(`{"phoneNumber":`)), 400, "Invalid JSON")
	})

	t.Run("sends through Auth", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		phone := testenv.TestPhone(t)
		wantBody(t, h.do("POST", "/api/auth/send-sms", "", map[string]any{"phoneNumber": phone}), 200,
			`{"success":true,"message":"Verification code sent successfully"}`)
		// Auth's own resend interval answers 429: mapped to the original's failure body with Auth's status as code.
		wantBody(t, h.do("POST", "/api/auth/send-sms", "", map[string]any{"phoneNumber": phone}), 429,
			`{"error":"Failed to send verification code. Please try again later.","code":429}`)
	})
}

// TestVerifySMS covers POST /api/auth/verify-sms (routes.md §3.10): validation of both branches, the session branch
// (profile completion) against the real database, and the OTP branch through the real Supabase Auth.
func TestVerifySMS(t *testing.T) {
	h := newHarness(t)
	const p = "/api/auth/verify-sms"

	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		wantErr(t, h.rawReq("POST", p, "", "application/json", []byte(`{"phoneNumber":`)), 400, "Invalid request format")
		for _, body := range []map[string]any{{}, {"phoneNumber": "+15551234567"}, {"verificationCode": "123456"},
			{"phoneNumber": "+15551234567", "verificationCode": ""},
			// useSession without an Authorization header is the OTP branch.
			{"phoneNumber": "+15551234567", "username": "x", "useSession": true}} {
			wantErr(t, h.do("POST", p, "", body), 400, "Phone number and verification code are required")
		}
		wantBody(t, h.do("POST", p, "", map[string]any{"phoneNumber": "5551234567", "verificationCode": "123456"}), 400,
			`{"error":"Invalid phone number format","suggestion":"Ensure your phone number is in E.164 format (e.g., +1234567890)"}`)
		for _, code := range []string{"12345", "1234567", "12a456", "１２３４５６"} {
			wantBody(t, h.do("POST", p, "", map[string]any{"phoneNumber": "+15551234567", "verificationCode": code}), 400,
				`{"error":"Verification code must be 6 digits","suggestion":"Enter the 6-digit code you received via SMS"}`)
		}
	})

	t.Run("session branch validation", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		u := testenv.NewAuthUserNoProfile(t)
		tok := u.Token(t, time.Hour)
		for _, body := range []map[string]any{{"useSession": true}, {"useSession": true, "phoneNumber": u.Phone},
			{"useSession": true, "username": "x"}, {"useSession": 1, "phoneNumber": u.Phone, "username": ""}} {
			wantErr(t, h.do("POST", p, tok, body), 400, "Phone number and username are required")
		}
		wantBody(t, h.do("POST", p, tok, map[string]any{"useSession": true, "phoneNumber": "123", "username": "x"}), 400,
			`{"error":"Invalid phone number format","suggestion":"Ensure your phone number is in E.164 format (e.g., +1234567890)"}`)
		body := map[string]any{"useSession": true, "phoneNumber": u.Phone, "username": "n_" + testenv.RandomHex(5)}
		for _, bad := range []string{u.Token(t, -time.Minute), "forged.token.value", testenv.NewUser(t).Token(t, -time.Hour)} {
			wantErr(t, h.do("POST", p, bad, body), 401, "Session expired. Please verify your phone number again.")
		}
		// The body's phone must be the token's.
		other := body
		other["phoneNumber"] = testenv.TestPhone(t)
		wantErr(t, h.do("POST", p, tok, other), 403, "Phone number does not match the verified session")
		long := map[string]any{"useSession": true, "phoneNumber": u.Phone, "username": strings.Repeat("u", 51)}
		r := h.do("POST", p, tok, long)
		mustStatus(t, r, 400)
		checkClean(t, r)
		if n := dbScalar[int64](t, `select count(*) from users where auth_user_id = $1`, u.AuthID); n != 0 {
			t.Fatal("a refused request created the profile")
		}
	})

	t.Run("session branch creates the profile, then signs in", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		u := testenv.NewAuthUserNoProfile(t)
		tok := u.Token(t, time.Hour)
		name := "n_" + testenv.RandomHex(5)
		r := h.do("POST", p, tok, map[string]any{"useSession": true, "phoneNumber": u.Phone, "username": name, "displayName": "Nice Name"})
		mustStatus(t, r, 200)
		if len(setCookies(r)) != 0 {
			t.Fatalf("the session branch set a cookie: %v", r.Header["Set-Cookie"])
		}
		body := r.JSON(t)
		user := body["user"].(map[string]any)
		if body["success"] != true || body["isNewUser"] != true || body["message"] != "Account created successfully" ||
			mustMarshal(t, body["session"]) != `{"access_token":"`+tok+`"}` {
			t.Fatalf("create: %s", r.Body)
		}
		id := dbScalar[string](t, `select id::text from users where auth_user_id = $1`, u.AuthID)
		if keysOf(user) != "avatarUrl,createdAt,displayName,id,phoneNumber,username" || user["id"] != id || user["username"] != name ||
			user["displayName"] != "Nice Name" || user["phoneNumber"] != u.Phone || user["avatarUrl"] != nil || user["createdAt"] == nil {
			t.Fatalf("user: %v", user)
		}
		if got := dbScalar[string](t, `select phone_number from users where id = $1`, id); got != u.Phone {
			t.Fatalf("stored phone %q", got)
		}
		// The triggers ran: a unique identifier and the note-to-self conversation.
		if ident := dbScalar[string](t, `select coalesce(unique_identifier, '') from users where id = $1`, id); !strings.HasPrefix(ident, "qryptchat") {
			t.Fatalf("unique_identifier %q", ident)
		}
		noteToSelf(t, h, tok)
		// Again: the profile exists, so it is a sign-in.
		r = h.do("POST", p, tok, map[string]any{"useSession": true, "phoneNumber": u.Phone, "username": "ignored"})
		mustStatus(t, r, 200)
		if b := r.JSON(t); b["isNewUser"] != false || b["message"] != "Signed in successfully" || b["user"].(map[string]any)["id"] != id ||
			b["user"].(map[string]any)["username"] != name {
			t.Fatalf("sign-in: %s", r.Body)
		}
		// No displayName: the username is used.
		v := testenv.NewAuthUserNoProfile(t)
		r = h.do("POST", p, v.Token(t, time.Hour), map[string]any{"useSession": true, "phoneNumber": v.Phone, "username": name + "x"})
		mustStatus(t, r, 200)
		if r.JSON(t)["user"].(map[string]any)["displayName"] != name+"x" {
			t.Fatalf("display name default: %s", r.Body)
		}
	})

	t.Run("username taken, case-insensitively", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		existing := testenv.NewUser(t)
		u := testenv.NewAuthUserNoProfile(t)
		tok := u.Token(t, time.Hour)
		r := h.do("POST", p, tok, map[string]any{"useSession": true, "phoneNumber": u.Phone, "username": strings.ToUpper(existing.Username)})
		wantBody(t, r, 409, `{"success":false,"error":"Username is already taken","suggestion":"Please choose a different username",`+
			`"session":{"access_token":"`+tok+`"}}`)
		// LIKE wildcards are not patterns: "t%" is not taken because "t_…" users exist.
		r = h.do("POST", p, tok, map[string]any{"useSession": true, "phoneNumber": u.Phone, "username": "t" + "_" + "%" + testenv.RandomHex(2)})
		if r.Status == 409 {
			t.Fatalf("wildcard username reported taken: %s", r.Body)
		}
		checkClean(t, r)
	})

	t.Run("OTP branch through Auth", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t) // its own send-sms limiter
		// A new phone: requiresUsername with the session and the cookie.
		phone := testenv.TestPhone(t)
		mustStatus(t, h.do("POST", "/api/auth/send-sms", "", map[string]any{"phoneNumber": phone}), 200)
		r := h.do("POST", p, "", map[string]any{"phoneNumber": phone, "verificationCode": "123456"})
		mustStatus(t, r, 200)
		body := r.JSON(t)
		sess, _ := body["session"].(map[string]any)
		if body["success"] != false || body["requiresUsername"] != true || body["message"] != "Username is required for new users" ||
			sess["access_token"] == nil || sess["refresh_token"] == nil {
			t.Fatalf("new phone: %s", r.Body)
		}
		cookies := setCookies(r)
		if len(cookies) == 0 || !strings.HasPrefix(cookies[0].Value, "base64-") || cookies[0].Path != "/" || cookies[0].HttpOnly {
			t.Fatalf("session cookie: %v", r.Header["Set-Cookie"])
		}
		// Profile completion with the answer's token.
		tok := sess["access_token"].(string)
		r = h.do("POST", p, tok, map[string]any{"useSession": true, "phoneNumber": phone, "username": "o_" + testenv.RandomHex(5)})
		mustStatus(t, r, 200)
		if r.JSON(t)["isNewUser"] != true {
			t.Fatalf("completion: %s", r.Body)
		}
		// The cookie works: session and user.
		cv := cookies[0].Value
		r = h.withCookie("GET", "/api/auth/session", cv, nil)
		mustStatus(t, r, 200)
		if s := r.JSON(t)["session"].(map[string]any); s["access_token"] != tok {
			t.Fatalf("session: %s", r.Body)
		}
		r = h.withCookie("GET", "/api/auth/user", cv, nil)
		mustStatus(t, r, 200)
		if u := r.JSON(t)["user"].(map[string]any); u["id"] == nil || u["phone"] != strings.TrimPrefix(phone, "+") {
			t.Fatalf("user: %s", r.Body)
		}
		// An expired access token with the real refresh token: refreshed, new cookie written.
		expired := map[string]any{}
		for k, v := range sess {
			expired[k] = v
		}
		expired["access_token"] = testenv.User{AuthID: r.JSON(t)["user"].(map[string]any)["id"].(string), Phone: phone}.Token(t, -time.Minute)
		raw, _ := json.Marshal(expired)
		r = h.withCookie("GET", "/api/auth/session", "base64-"+base64.RawURLEncoding.EncodeToString(raw), nil)
		mustStatus(t, r, 200)
		if s := r.JSON(t)["session"].(map[string]any); s["access_token"] == expired["access_token"] || len(setCookies(r)) == 0 {
			t.Fatalf("refresh: %s", r.Body)
		}

		// A new phone with the username in the OTP request: created at once, cookie set.
		phone2 := testenv.TestPhone(t)
		mustStatus(t, h.do("POST", "/api/auth/send-sms", "", map[string]any{"phoneNumber": phone2}), 200)
		name := "p_" + testenv.RandomHex(5)
		r = h.do("POST", p, "", map[string]any{"phoneNumber": phone2, "verificationCode": "123456", "username": name, "displayName": "P"})
		mustStatus(t, r, 200)
		if b := r.JSON(t); b["success"] != true || b["isNewUser"] != true || b["message"] != "Account created successfully" ||
			b["user"].(map[string]any)["username"] != name || b["user"].(map[string]any)["displayName"] != "P" ||
			b["session"].(map[string]any)["refresh_token"] == nil || len(setCookies(r)) == 0 {
			t.Fatalf("new user with username: %s", r.Body)
		}

		// An existing user signs in with the OTP alone.
		existing := testenv.NewUserWithTestPhone(t)
		mustStatus(t, h.do("POST", "/api/auth/send-sms", "", map[string]any{"phoneNumber": existing.Phone}), 200)
		r = h.do("POST", p, "", map[string]any{"phoneNumber": existing.Phone, "verificationCode": "123456"})
		mustStatus(t, r, 200)
		if b := r.JSON(t); b["success"] != true || b["isNewUser"] != false || b["message"] != "Signed in successfully" ||
			b["user"].(map[string]any)["id"] != existing.ID || len(setCookies(r)) == 0 {
			t.Fatalf("existing user: %s", r.Body)
		}
		// A wrong code: Auth's "Token has expired or is invalid" maps to CODE_EXPIRED.
		r = h.do("POST", p, "", map[string]any{"phoneNumber": existing.Phone, "verificationCode": "000000"})
		wantBody(t, r, 400, `{"error":"Your verification code has expired","code":"CODE_EXPIRED","canRetry":false,`+
			`"suggestedAction":"Please request a new verification code"}`)
		if len(setCookies(r)) != 0 {
			t.Fatal("a failed verification set a cookie")
		}
	})
}

// TestAuthSession covers GET /api/auth/session (routes.md §3.7): cookie only, verified, cleared when invalid.
func TestAuthSession(t *testing.T) {
	h := newHarness(t)
	const p = "/api/auth/session"

	t.Run("no cookie", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		wantBody(t, h.do("GET", p, "", nil), 200, `{"session":null}`)
		wantBody(t, h.do("GET", p, testenv.NewUser(t).Token(t, time.Hour), nil), 200, `{"session":null}`)
		wantBody(t, h.rawReq("GET", p, "", "", nil, "Cookie", "sb-other-auth-token=x; theme=dark"), 200, `{"session":null}`)
	})

	t.Run("valid cookie, whole and chunked", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		u := testenv.NewUser(t)
		sess := sessionJSON(t, u, time.Hour)
		var want map[string]any
		_ = json.Unmarshal(sess, &want)
		check := func(r resp) {
			t.Helper()
			mustStatus(t, r, 200)
			got := r.JSON(t)["session"].(map[string]any)
			if keysOf(got) != "access_token,expires_at,expires_in,refresh_token,token_type,user" || got["access_token"] != want["access_token"] ||
				got["refresh_token"] != want["refresh_token"] || got["user"].(map[string]any)["id"] != u.AuthID {
				t.Fatalf("session: %s", r.Body)
			}
		}
		check(h.withCookie("GET", p, cookieValue(sess), nil))
		v := cookieValue(sess)
		check(h.rawReq("GET", p, "", "", nil, "Cookie", cookieName+".0="+v[:len(v)/2]+"; "+cookieName+".1="+v[len(v)/2:]))
		check(h.rawReq("GET", p, "", "", nil, "Cookie", cookieName+"="+string(sess))) // raw JSON form (URL-unsafe chars pass through the test client)
		// A valid Bearer of someone else does not hide the cookie's session.
		check(h.rawReq("GET", p, testenv.NewUser(t).Token(t, time.Hour), "", nil, "Cookie", cookieName+"="+v))
	})

	t.Run("invalid cookie is refused and cleared", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		u := testenv.NewUser(t)
		forged, _ := json.Marshal(map[string]any{"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "refresh_token": "", "token_type": "bearer"})
		for _, v := range []string{"base64-!!!", "garbage", cookieValue(forged), cookieValue([]byte(`{"no":"token"}`))} {
			r := h.withCookie("GET", p, v, nil)
			wantErr(t, r, 401, "Invalid session")
			if !cleared(r) {
				t.Fatalf("cookie %q not cleared: %v", v, r.Header["Set-Cookie"])
			}
		}
		// Expired, with a refresh token Auth will not accept.
		r := h.withCookie("GET", p, cookieValue(sessionJSON(t, u, -time.Minute)), nil)
		wantErr(t, r, 401, "Invalid session")
		if !cleared(r) {
			t.Fatalf("cookie not cleared: %v", r.Header["Set-Cookie"])
		}
	})
}

// TestAuthUser covers GET /api/auth/user (routes.md §3.9).
func TestAuthUser(t *testing.T) {
	h := newHarness(t)
	wantErr(t, h.do("GET", "/api/auth/user", "", nil), 401, "Auth session missing!")
	// Supabase Auth answers only for a session it issued (it checks the token's session_id): a real sign-in.
	u := testenv.NewUserWithTestPhone(t)
	sess := testenv.SignIn(t, u.Phone)
	r := h.do("GET", "/api/auth/user", sess.AccessToken, nil)
	mustStatus(t, r, 200)
	user := r.JSON(t)["user"].(map[string]any)
	if user["id"] != u.AuthID || user["phone"] != strings.TrimPrefix(u.Phone, "+") || user["aud"] != "authenticated" {
		t.Fatalf("user: %s", r.Body)
	}
	r = h.withCookie("GET", "/api/auth/user", cookieValue(sess.Raw), nil)
	mustStatus(t, r, 200)
	if r.JSON(t)["user"].(map[string]any)["id"] != u.AuthID {
		t.Fatalf("user via cookie: %s", r.Body)
	}
	// A well-signed token for a session Auth does not know (signed out elsewhere): refused, not an outage.
	wantErr(t, h.do("GET", "/api/auth/user", u.Token(t, time.Hour), nil), 401, "Session from session_id claim in JWT does not exist")
}

// TestKeyBackup covers GET and PUT /api/auth/key-backup (routes.md §3.4). The restore limit of §2.2 is the rate
// limiter's first rule (middleware, wired by cmd/suparelay), which the harness does not install.
func TestKeyBackup(t *testing.T) {
	h := newHarness(t)
	const p = "/api/auth/key-backup"
	me, empty := testenv.NewUser(t), testenv.NewUser(t)
	tok := me.Token(t, time.Hour)

	// PUT (not rate limited).
	wantErr(t, h.do("PUT", p, "", map[string]any{"encrypted_keys": "{}"}), 401, "Unauthorized")
	for _, v := range []any{nil, 5, map[string]any{"a": 1}, ""} {
		wantErr(t, h.do("PUT", p, tok, map[string]any{"encrypted_keys": v}), 400, "Missing or invalid encrypted_keys")
	}
	for _, v := range []string{"not json", "{", `{"a":}`} {
		wantErr(t, h.do("PUT", p, tok, map[string]any{"encrypted_keys": v}), 400, "encrypted_keys must be a valid JSON string")
	}
	r := h.do("PUT", p, tok, map[string]any{"encrypted_keys": `{"v":1}`})
	mustStatus(t, r, 200)
	first := r.JSON(t)
	if keysOf(first) != "backup_id,created_at,success,updated_at" || first["success"] != true || len(first["backup_id"].(string)) != 36 {
		t.Fatalf("PUT: %s", r.Body)
	}
	r = h.do("PUT", p, tok, map[string]any{"encrypted_keys": `{"v":2}`})
	mustStatus(t, r, 200)
	second := r.JSON(t)
	if second["backup_id"] != first["backup_id"] || second["created_at"] != first["created_at"] || second["updated_at"] == first["updated_at"] {
		t.Fatalf("upsert: %v then %v", first, second)
	}
	if n := dbScalar[int64](t, `select count(*) from key_backups where user_id = $1`, me.AuthID); n != 1 {
		t.Fatalf("%d backup rows, want 1 (keyed by auth uid)", n)
	}

	// GET: by Bearer and by cookie (the restore page).
	get := func(tok, ua string) resp { return h.rawReq("GET", p, tok, "", nil, "User-Agent", ua) }
	wantErr(t, get("", "ua-1"), 401, "Unauthorized")
	wantBody(t, get(empty.Token(t, time.Hour), "ua-1"), 404, `{"backup":null}`)
	r = h.rawReq("GET", p, "", "", nil, "User-Agent", "ua-1", "Cookie", cookieName+"="+cookieValue(sessionJSON(t, me, time.Hour)))
	mustStatus(t, r, 200)
	b := r.JSON(t)["backup"].(map[string]any)
	if keysOf(b) != "created_at,encrypted_keys,updated_at" || b["encrypted_keys"] != `{"v":2}` || b["updated_at"] != second["updated_at"] {
		t.Fatalf("GET: %s", r.Body)
	}
	mustStatus(t, get(tok, "ua-2"), 200)
}
