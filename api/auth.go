package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/supa"
)

// authRoutes are the login and session routes (routes.md §3).
func (s *Server) authRoutes(r chi.Router) {
	r.Post("/auth/send-sms", s.sendSMS)
	r.Post("/auth/verify-sms", s.verifySMS)
	r.Get("/auth/session", s.authSession)
	r.Get("/auth/user", s.authUser)
	r.Get("/auth/key-backup", s.getKeyBackup)
	r.Put("/auth/key-backup", s.putKeyBackup)
}

// routeLimits are the per-route limits of the contract that live with their routes.
type routeLimits struct {
	smsPerIP    *windowLimiter // send-sms: 5 per 60 s per IP (routes.md §3.6)
	smsPerPhone *windowLimiter // send-sms: 5 per hour per phone, against SMS pumping
}

func newRouteLimits(now func() time.Time) routeLimits {
	return routeLimits{
		smsPerIP:    newWindowLimiter(5, time.Minute, now),
		smsPerPhone: newWindowLimiter(5, time.Hour, now),
	}
}

// e164 is the phone format the original accepted: '+', a digit 1–9, then 1 to 14 digits.
var e164 = regexp.MustCompile(`^\+[1-9]\d{1,14}$`)

var sixDigits = regexp.MustCompile(`^\d{6}$`)

// identity returns the verified caller, if any.
func identity(r *http.Request) (middleware.Identity, bool) {
	return middleware.IdentityFrom(r.Context())
}

// ---- POST /api/auth/send-sms ----

func (s *Server) sendSMS(w http.ResponseWriter, r *http.Request) {
	ip := middleware.ClientIP(r, s.proxies).String()
	if ok, reset := s.limits.smsPerIP.allow(ip); !ok {
		tooManySMS(w, s.now(), reset)
		return
	}
	var body struct {
		PhoneNumber any `json:"phoneNumber"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	phone, isString := body.PhoneNumber.(string)
	if !truthy(body.PhoneNumber) {
		writeError(w, http.StatusBadRequest, "Phone number is required")
		return
	}
	if !isString {
		// The original failed on a truthy non-string and answered this 500; routes.md §3.6 keeps it.
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "Internal server error", "code": "INTERNAL_ERROR"})
		return
	}
	if !e164.MatchString(phone) {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"error":      "Invalid phone number format. Please use E.164 format (e.g., +1234567890)",
			"suggestion": "Ensure your phone number starts with + and includes country code",
		})
		return
	}
	if ok, reset := s.limits.smsPerPhone.allow(phone); !ok {
		tooManySMS(w, s.now(), reset)
		return
	}
	if err := s.supa.SendOTP(r.Context(), phone); err != nil {
		s.log.WarnContext(r.Context(), "send OTP failed", "err", err)
		status, body := smsFailure(err)
		writeJSON(w, status, body)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Verification code sent successfully"})
}

func tooManySMS(w http.ResponseWriter, now, reset time.Time) {
	secs := int(reset.Sub(now).Seconds() + 0.999)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("X-RateLimit-Remaining", "0")
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	writeError(w, http.StatusTooManyRequests, "Too many requests. Please try again later.")
}

var twilioCode = regexp.MustCompile(`\b\d{5}\b`)

// smsFailure maps an Auth OTP failure the way the original did (routes.md §3.6).
func smsFailure(err error) (int, map[string]any) {
	body := map[string]any{"error": "Failed to send verification code. Please try again later."}
	var e *supa.Error
	if !errors.As(err, &e) || e.Status == 0 {
		body["code"] = "SMS_SEND_FAILED"
		return http.StatusServiceUnavailable, body
	}
	body["code"] = e.Status
	msg := e.Message
	code := twilioCode.FindString(msg)
	switch {
	case e.Status == http.StatusTooManyRequests:
		return http.StatusTooManyRequests, body
	case strings.Contains(msg, "Authenticate") || code == "20003":
		body["suggestion"] = "The SMS provider credentials are not valid; check the Auth SMS configuration."
		body["actionRequired"] = "CONFIGURE_TWILIO"
		return http.StatusServiceUnavailable, body
	case code == "21610" || strings.Contains(msg, "not verified"):
		body["suggestion"] = "This number cannot receive messages from a trial account; verify it or upgrade."
		body["actionRequired"] = "VERIFY_NUMBER_OR_UPGRADE"
		return http.StatusInternalServerError, body
	case code == "21211" || strings.Contains(msg, "Invalid phone number"):
		body["suggestion"] = "Check the phone number and its country code."
		body["actionRequired"] = "FIX_PHONE_FORMAT"
		return http.StatusBadRequest, body
	}
	return http.StatusInternalServerError, body
}

// ---- POST /api/auth/verify-sms ----

type verifyRequest struct {
	PhoneNumber      any `json:"phoneNumber"`
	VerificationCode any `json:"verificationCode"`
	Username         any `json:"username"`
	DisplayName      any `json:"displayName"`
	UseSession       any `json:"useSession"`
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case float64:
		return x != 0
	}
	return true
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func (s *Server) verifySMS(w http.ResponseWriter, r *http.Request) {
	var body verifyRequest
	if err := decodeJSON(w, r, &body); err != nil {
		if errors.Is(err, errBodyTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "Request body too large")
			return
		}
		writeError(w, http.StatusBadRequest, "Invalid request format")
		return
	}
	phone := str(body.PhoneNumber)
	if truthy(body.UseSession) && r.Header.Get("Authorization") != "" {
		s.verifySessionBranch(w, r, body, phone)
		return
	}
	code := str(body.VerificationCode)
	if phone == "" || code == "" {
		writeError(w, http.StatusBadRequest, "Phone number and verification code are required")
		return
	}
	if !e164.MatchString(phone) {
		badPhone(w)
		return
	}
	if !sixDigits.MatchString(code) {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"error": "Verification code must be 6 digits", "suggestion": "Enter the 6-digit code you received via SMS"})
		return
	}
	sess, err := s.supa.VerifyOTP(r.Context(), phone, code)
	if err != nil {
		var e *supa.Error
		if errors.As(err, &e) && e.Status == 0 {
			s.log.ErrorContext(r.Context(), "verify OTP: Auth unreachable", "err", err)
			writeError(w, http.StatusServiceUnavailable, "Authentication service unavailable")
			return
		}
		status, out := otpFailure(err)
		writeJSON(w, status, out)
		return
	}
	authUID := sess.UserID()
	if authUID == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Verification failed - no user data", "code": "NO_USER_DATA"})
		return
	}
	middleware.WriteSessionCookie(w, r, s.cookie, sess.Raw, s.secure)
	s.completeSignIn(w, r, authUID, sess.AccessToken, phone, body, sess.Raw)
}

func badPhone(w http.ResponseWriter) {
	writeJSON(w, http.StatusBadRequest, map[string]string{
		"error": "Invalid phone number format", "suggestion": "Ensure your phone number is in E.164 format (e.g., +1234567890)"})
}

// otpFailure maps an Auth verify failure by its message, first match wins (routes.md §3.10).
func otpFailure(err error) (int, map[string]any) {
	var e *supa.Error
	msg := err.Error()
	if errors.As(err, &e) {
		msg = e.Message
	}
	out := func(status int, code, text string, retry bool, action string) (int, map[string]any) {
		return status, map[string]any{"error": text, "code": code, "canRetry": retry, "suggestedAction": action}
	}
	switch {
	case strings.Contains(msg, "expired"):
		return out(400, "CODE_EXPIRED", "Your verification code has expired", false, "Please request a new verification code")
	case strings.Contains(msg, "invalid"):
		return out(400, "CODE_INVALID_OR_EXPIRED", "The verification code is incorrect or has expired", false, "Please check the code or request a new one")
	case strings.Contains(msg, "Too many requests"):
		return out(429, "TOO_MANY_ATTEMPTS", "Too many verification attempts", false, "Please wait a few minutes before trying again")
	case strings.Contains(msg, "rate limit"):
		return out(429, "RATE_LIMITED", "Rate limit exceeded", false, "Please wait before requesting a new code")
	}
	return out(400, "VERIFICATION_FAILED", "Invalid verification code", true, "Please try again")
}

// verifySessionBranch is profile completion: the caller proves its phone with the token of the first answer.
func (s *Server) verifySessionBranch(w http.ResponseWriter, r *http.Request, body verifyRequest, phone string) {
	if phone == "" || str(body.Username) == "" {
		writeError(w, http.StatusBadRequest, "Phone number and username are required")
		return
	}
	if !e164.MatchString(phone) {
		badPhone(w)
		return
	}
	h := r.Header.Get("Authorization")
	token := strings.TrimSpace(h)
	if len(token) > 7 && strings.EqualFold(token[:7], "bearer ") {
		token = strings.TrimSpace(token[7:])
	}
	claims, err := s.verifier.Verify(r.Context(), token)
	if err != nil {
		// The original answered "Session expired" whenever Auth refused the token, expired or forged alike, and
		// "Invalid session" only when the check itself failed (routes.md §3.10).
		if errors.Is(err, middleware.ErrKeysUnavailable) {
			writeError(w, http.StatusUnauthorized, "Invalid session. Please verify your phone number again.")
			return
		}
		writeError(w, http.StatusUnauthorized, "Session expired. Please verify your phone number again.")
		return
	}
	if strings.TrimPrefix(claims.Phone, "+") != strings.TrimPrefix(phone, "+") {
		writeError(w, http.StatusForbidden, "Phone number does not match the verified session")
		return
	}
	sess, _ := json.Marshal(map[string]string{"access_token": token})
	s.completeSignIn(w, r, claims.Subject, token, phone, body, sess)
}

// signedInUser is the user object of verify-sms answers.
type signedInUser struct {
	ID          string  `json:"id"`
	Username    string  `json:"username"`
	DisplayName string  `json:"displayName"`
	PhoneNumber string  `json:"phoneNumber"`
	AvatarURL   *string `json:"avatarUrl"`
	CreatedAt   *string `json:"createdAt"`
}

type userRow struct {
	ID          string  `json:"id"`
	Username    string  `json:"username"`
	DisplayName string  `json:"display_name"`
	AvatarURL   *string `json:"avatar_url"`
	CreatedAt   *string `json:"created_at"`
}

// completeSignIn finds or creates the caller's users row and answers verify-sms.
func (s *Server) completeSignIn(w http.ResponseWriter, r *http.Request, authUID, token, phone string, body verifyRequest, session json.RawMessage) {
	ctx := r.Context()
	var rows []userRow
	err := s.supa.As(token).Select(ctx, "users",
		supa.Q("select", "id,username,display_name,avatar_url,created_at", "auth_user_id", "eq."+authUID, "limit", "2"), &rows)
	if err != nil {
		s.log.WarnContext(ctx, "verify-sms: profile lookup failed; treating as new user", "err", err)
		rows = nil
	}
	if len(rows) > 0 {
		u := rows[0]
		writeJSON(w, http.StatusOK, map[string]any{
			"success": true, "isNewUser": false, "message": "Signed in successfully", "session": session,
			"user": signedInUser{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, PhoneNumber: phone,
				AvatarURL: u.AvatarURL, CreatedAt: u.CreatedAt},
		})
		return
	}
	username := strings.TrimSpace(str(body.Username))
	if username == "" {
		writeJSON(w, http.StatusOK, map[string]any{"success": false, "requiresUsername": true,
			"message": "Username is required for new users", "session": session})
		return
	}
	if len([]rune(username)) > 50 {
		writeError(w, http.StatusBadRequest, "Username must be 50 characters or less")
		return
	}
	display := strings.TrimSpace(str(body.DisplayName))
	if display == "" {
		display = username
	}
	if len([]rune(display)) > 100 {
		writeError(w, http.StatusBadRequest, "Display name must be 100 characters or less")
		return
	}
	taken := func() {
		writeJSON(w, http.StatusConflict, map[string]any{"success": false, "error": "Username is already taken",
			"suggestion": "Please choose a different username", "session": session})
	}
	if exists, err := s.supa.UsernameTaken(ctx, username); err != nil {
		s.log.ErrorContext(ctx, "verify-sms: username check failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "Failed to create user account", "code": "USER_CREATION_FAILED"})
		return
	} else if exists {
		taken()
		return
	}
	row, err := s.supa.CreateUserProfile(ctx, authUID, phone, username, display)
	if err != nil {
		if supa.KindOf(err) == supa.KindConflict {
			taken()
			return
		}
		s.log.ErrorContext(ctx, "verify-sms: creating users row failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "Failed to create user account", "code": "USER_CREATION_FAILED"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true, "isNewUser": true, "message": "Account created successfully", "session": session,
		"user": signedInUser{ID: row.ID, Username: row.Username, DisplayName: row.DisplayName, PhoneNumber: phone,
			AvatarURL: row.AvatarURL, CreatedAt: row.CreatedAt},
	})
}

// ---- GET /api/auth/session ----

// authSession reports the cookie session only (auth.md §3), verified and refreshed by the authenticator.
func (s *Server) authSession(w http.ResponseWriter, r *http.Request) {
	if id, ok := identity(r); ok && id.Source == middleware.SourceBearer && r.Header.Get("Cookie") != "" {
		// A valid Bearer wins over the cookie in Authenticate, which then never looks at the cookie; this route
		// reports the cookie session only, so resolve the caller again without the Authorization header (that run
		// also refreshes an expired cookie and writes the new one).
		r2 := r.Clone(r.Context())
		r2.Header.Del("Authorization")
		s.auth.Authenticate(http.HandlerFunc(s.cookieSession)).ServeHTTP(w, r2)
		return
	}
	s.cookieSession(w, r)
}

// cookieSession answers GET /api/auth/session from an identity resolved from the cookie alone.
func (s *Server) cookieSession(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if ok && id.Source == middleware.SourceCookie && id.Session != nil {
		writeJSON(w, http.StatusOK, map[string]json.RawMessage{"session": sessionView(id.Session)})
		return
	}
	if reason, _ := middleware.AuthFailureFrom(r.Context()); reason == middleware.FailAuthUnavailable {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "Authentication service unavailable")
		return
	}
	if _, err := middleware.ReadSessionCookie(r, s.cookie); errors.Is(err, middleware.ErrNoSessionCookie) {
		writeJSON(w, http.StatusOK, map[string]any{"session": nil})
		return
	}
	middleware.ClearSessionCookie(w, r, s.cookie)
	writeError(w, http.StatusUnauthorized, "Invalid session")
}

// sessionView is the stored session with the fields the original returned.
func sessionView(sess *middleware.Session) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(sess.Raw, &m) != nil {
		m = map[string]json.RawMessage{}
	}
	out := map[string]json.RawMessage{}
	for _, k := range []string{"access_token", "token_type", "expires_in", "expires_at", "refresh_token", "user"} {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	b, _ := json.Marshal(out)
	return b
}

// ---- GET /api/auth/user ----

func (s *Server) authUser(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "Auth session missing!")
		return
	}
	user, err := s.supa.GetUser(r.Context(), id.Token)
	if err != nil {
		var e *supa.Error
		if errors.As(err, &e) && (e.Status == 0 || e.Status >= 500) {
			// Auth is down or broken, the session may be fine: a 401 would send the browser to the login page.
			writeError(w, http.StatusServiceUnavailable, "Authentication service unavailable")
			return
		}
		msg := "Unauthorized"
		if errors.As(err, &e) && e.Message != "" && len(e.Message) < 200 {
			msg = e.Message
		}
		writeError(w, http.StatusUnauthorized, msg)
		return
	}
	writeJSON(w, http.StatusOK, map[string]json.RawMessage{"user": user})
}

// ---- GET, PUT /api/auth/key-backup ----

type keyBackupRow struct {
	ID            string `json:"id,omitempty"`
	EncryptedKeys string `json:"encrypted_keys"`
	CreatedAt     string `json:"created_at"`
	UpdatedAt     string `json:"updated_at"`
}

func (s *Server) getKeyBackup(w http.ResponseWriter, r *http.Request) {
	// The strict restore limit (routes.md §2.2) is the rate limiter's first rule, shared across nodes.
	id, ok := identity(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	var row keyBackupRow
	err := s.supa.As(id.Token).SelectOne(r.Context(), "key_backups",
		supa.Q("select", "encrypted_keys,created_at,updated_at", "user_id", "eq."+id.AuthUID), &row)
	if supa.IsNotFound(err) {
		writeJSON(w, http.StatusNotFound, map[string]any{"backup": nil})
		return
	}
	if err != nil {
		s.dbFailure(w, r, err, "Failed to fetch key backup")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"backup": row})
}

func (s *Server) putKeyBackup(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	var body struct {
		EncryptedKeys any `json:"encrypted_keys"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	keys, isString := body.EncryptedKeys.(string)
	if !isString || keys == "" {
		writeError(w, http.StatusBadRequest, "Missing or invalid encrypted_keys")
		return
	}
	if !json.Valid([]byte(keys)) {
		writeError(w, http.StatusBadRequest, "encrypted_keys must be a valid JSON string")
		return
	}
	var rows []keyBackupRow
	err := s.supa.As(id.Token).Insert(r.Context(), "key_backups",
		map[string]any{"user_id": id.AuthUID, "encrypted_keys": keys, "updated_at": s.now().UTC().Format(time.RFC3339Nano)},
		supa.Q("on_conflict", "user_id", "select", "id,encrypted_keys,created_at,updated_at"), &rows,
		"resolution=merge-duplicates")
	if err != nil || len(rows) != 1 {
		if err == nil {
			err = &supa.Error{Op: "upsert key_backups", Status: 500, Message: "no row returned"}
		}
		s.dbFailure(w, r, err, "Failed to store key backup")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "backup_id": rows[0].ID,
		"created_at": rows[0].CreatedAt, "updated_at": rows[0].UpdatedAt})
}
