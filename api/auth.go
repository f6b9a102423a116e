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

	"github.com/qryptchat/suparelay/internal/authsession"
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

// POST /api/auth/send-sms (routes.md §3.6): Auth texts a one-time code to the phone, within the per-IP and per-phone
// limits.
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

// smsFailure maps an Auth OTP failure the way the original did (routes.md §3.6): "code" is Auth's HTTP status.
func smsFailure(err error) (int, map[string]any) {
	body := map[string]any{"error": "Failed to send verification code. Please try again later."}
	kind := supa.AuthErrorKind(err)
	if kind == supa.AuthUnreachable {
		body["code"] = "SMS_SEND_FAILED"
		return http.StatusServiceUnavailable, body
	}
	body["code"] = supa.AuthStatus(err)
	if kind == supa.AuthRateLimited {
		return http.StatusTooManyRequests, body
	}
	switch supa.SMSRefusalOf(err) {
	case supa.SMSProviderCredentials:
		body["suggestion"] = "The SMS provider credentials are not valid; check the Auth SMS configuration."
		body["actionRequired"] = "CONFIGURE_TWILIO"
		return http.StatusServiceUnavailable, body
	case supa.SMSNumberNotVerified:
		body["suggestion"] = "This number cannot receive messages from a trial account; verify it or upgrade."
		body["actionRequired"] = "VERIFY_NUMBER_OR_UPGRADE"
		return http.StatusInternalServerError, body
	case supa.SMSInvalidNumber:
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

// POST /api/auth/verify-sms (routes.md §3.10): signs in with a one-time code (OTP branch) or completes the profile
// of a session verified earlier (session branch), creating the users row of a new user.
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
		if supa.AuthErrorKind(err) == supa.AuthUnreachable {
			s.log.ErrorContext(r.Context(), "verify OTP: Auth unreachable", "err", err)
			middleware.WriteAuthUnavailable(w)
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
	out := func(status int, code, text string, retry bool, action string) (int, map[string]any) {
		return status, map[string]any{"error": text, "code": code, "canRetry": retry, "suggestedAction": action}
	}
	switch supa.OTPRefusalOf(err) {
	case supa.OTPExpired:
		return out(400, "CODE_EXPIRED", "Your verification code has expired", false, "Please request a new verification code")
	case supa.OTPInvalid:
		return out(400, "CODE_INVALID_OR_EXPIRED", "The verification code is incorrect or has expired", false, "Please check the code or request a new one")
	case supa.OTPTooManyAttempts:
		return out(429, "TOO_MANY_ATTEMPTS", "Too many verification attempts", false, "Please wait a few minutes before trying again")
	case supa.OTPRateLimited:
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

// completeSignIn finds or creates the caller's users row and answers verify-sms.
func (s *Server) completeSignIn(w http.ResponseWriter, r *http.Request, authUID, token, phone string, body verifyRequest, session json.RawMessage) {
	ctx := r.Context()
	u, err := s.supa.As(token).SignInProfile(ctx, authUID)
	if err != nil {
		// The original treated a failed lookup as "no profile" (routes.md §3.10); u is nil then.
		s.log.WarnContext(ctx, "verify-sms: profile lookup failed; treating as new user", "err", err)
	}
	if u != nil {
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

// GET /api/auth/session (routes.md §3.7): reports the cookie session only (auth.md §3), verified and refreshed by the
// authenticator.
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
	// (An Auth outage during the cookie's refresh was answered 503 before this handler: middleware.AuthOutage.)
	if _, err := middleware.ReadSessionCookie(r, s.cookie); errors.Is(err, middleware.ErrNoSessionCookie) {
		writeJSON(w, http.StatusOK, map[string]any{"session": nil})
		return
	}
	middleware.ClearSessionCookie(w, r, s.cookie)
	writeError(w, http.StatusUnauthorized, "Invalid session")
}

// sessionView is the stored session with the fields the original returned.
func sessionView(sess *authsession.Session) json.RawMessage {
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

// GET /api/auth/user (routes.md §3.9): Auth's user object of the caller's session, unchanged.
func (s *Server) authUser(w http.ResponseWriter, r *http.Request) {
	id, ok := identity(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "Auth session missing!")
		return
	}
	user, err := s.supa.GetUser(r.Context(), id.Token)
	if err != nil {
		if kind := supa.AuthErrorKind(err); kind == supa.AuthUnreachable || kind == supa.AuthServerError {
			// Auth is down or broken, the session may be fine: a 401 would send the browser to the login page.
			middleware.WriteAuthUnavailable(w)
			return
		}
		msg := "Unauthorized"
		if m := supa.AuthMessage(err); m != "" && len(m) < 200 {
			msg = m
		}
		writeError(w, http.StatusUnauthorized, msg)
		return
	}
	writeJSON(w, http.StatusOK, map[string]json.RawMessage{"user": user})
}

// ---- GET, PUT /api/auth/key-backup ----

// keyBackupView is the backup object of GET /api/auth/key-backup.
type keyBackupView struct {
	EncryptedKeys string `json:"encrypted_keys"`
	CreatedAt     string `json:"created_at"`
	UpdatedAt     string `json:"updated_at"`
}

// GET /api/auth/key-backup (routes.md §3.4): the caller's encrypted key backup; 404 {"backup":null} when none.
func (s *Server) getKeyBackup(w http.ResponseWriter, r *http.Request) {
	// The strict restore limit (routes.md §2.2) is the rate limiter's first rule, shared across nodes.
	id, ok := identity(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	row, err := s.supa.As(id.Token).KeyBackup(r.Context(), id.AuthUID)
	if errors.Is(err, supa.ErrNoKeyBackup) {
		writeJSON(w, http.StatusNotFound, map[string]any{"backup": nil})
		return
	}
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to fetch key backup"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"backup": keyBackupView{
		EncryptedKeys: row.EncryptedKeys, CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt}})
}

// PUT /api/auth/key-backup (routes.md §3.4): creates or replaces the caller's encrypted key backup.
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
	row, err := s.supa.As(id.Token).StoreKeyBackup(r.Context(), id.AuthUID, keys, s.now())
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to store key backup"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "backup_id": row.ID,
		"created_at": row.CreatedAt, "updated_at": row.UpdatedAt})
}
