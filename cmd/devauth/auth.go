package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// e164 is GoTrue's phone check after stripping '+' and formatting.
var e164 = regexp.MustCompile(`^[1-9][0-9]{1,14}$`)

func (s *Server) fail(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		authError(w, ae.status, ae.code, ae.msg)
		return
	}
	s.log.Error("devauth request failed", "err", err)
	authError(w, http.StatusInternalServerError, "unexpected_failure", "Database error: "+err.Error())
}

// decode reads a JSON body (at most 64 KiB) into v with GoTrue's error for bad JSON.
func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10)).Decode(v); err != nil {
		return &apiError{http.StatusBadRequest, "bad_json", "Could not parse request body as JSON: " + err.Error()}
	}
	return nil
}

func phoneFrom(raw string) (string, error) {
	p := normalizePhone(raw)
	if !e164.MatchString(p) {
		return "", &apiError{http.StatusBadRequest, "validation_failed", "Invalid phone number format (E.164 required)"}
	}
	return p, nil
}

// otpCode is the code devauth "sends": the configured test OTP, else the any-OTP code, else a random one.
func (s *Server) otpCode(phone string) string {
	if c, ok := s.cfg.TestOTPs[phone]; ok {
		return c
	}
	if s.cfg.AnyOTP {
		return anyOTPCode
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
	return fmt.Sprintf("%06d", n.Int64())
}

// handleOTP is POST /auth/v1/otp: creates the user if asked and "sends" the code to devauth's log, with the
// per-phone send interval (max_frequency) enforced in the database.
func (s *Server) handleOTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Phone      string `json:"phone"`
		Email      string `json:"email"`
		CreateUser *bool  `json:"create_user"`
		Channel    string `json:"channel"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, err)
		return
	}
	if body.Phone == "" {
		msg := "Only an email address or phone number should be provided"
		if body.Email != "" {
			msg = "devauth supports phone OTP only"
		}
		authError(w, http.StatusBadRequest, "validation_failed", msg)
		return
	}
	if body.Channel != "" && body.Channel != "sms" {
		authError(w, http.StatusBadRequest, "validation_failed", "Unsupported channel: devauth sends sms only")
		return
	}
	phone, err := phoneFrom(body.Phone)
	if err != nil {
		s.fail(w, err)
		return
	}
	create := body.CreateUser == nil || *body.CreateUser
	code := s.otpCode(phone)
	err = s.db.tx(r.Context(), func(tx pgx.Tx) error {
		var wait float64
		err := tx.QueryRow(r.Context(), `select extract(epoch from sent_at + make_interval(secs => $2) - now())
			from devauth.otp_sends where phone = $1 for update`, phone, s.cfg.OTPInterval.Seconds()).Scan(&wait)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err == nil && wait > 0 {
			return &apiError{http.StatusTooManyRequests, "over_sms_send_rate_limit",
				fmt.Sprintf("For security purposes, you can only request this after %d seconds.", int(math.Ceil(wait)))}
		}
		if _, ok, err := findOrCreatePhoneUser(r.Context(), tx, phone, create); err != nil {
			return err
		} else if !ok {
			return &apiError{http.StatusUnprocessableEntity, "otp_disabled", "Signups not allowed for otp"}
		}
		_, err = tx.Exec(r.Context(), `insert into devauth.otp_sends (phone, code, sent_at) values ($1, $2, now())
			on conflict (phone) do update set code = excluded.code, sent_at = excluded.sent_at`, phone, code)
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info(fmt.Sprintf("SMS to +%s : Your confirmation code is %s", phone, code))
	writeJSON(w, http.StatusOK, map[string]any{})
}

// codeMatches reports whether code is valid for phone: a configured test OTP, the any-OTP code, or the code last
// "sent" to the phone within the 300 s OTP lifetime (consumed on use).
func (s *Server) codeMatches(ctx context.Context, tx pgx.Tx, phone, code string) (bool, error) {
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	if c, ok := s.cfg.TestOTPs[phone]; ok && eq(c, code) {
		return true, nil
	}
	if s.cfg.AnyOTP && eq(code, anyOTPCode) {
		return true, nil
	}
	tag, err := tx.Exec(ctx, `update devauth.otp_sends set code = '' where phone = $1 and code <> '' and code = $2
		and sent_at > now() - interval '300 seconds'`, phone, code)
	return err == nil && tag.RowsAffected() == 1, err
}

var errOTP = &apiError{http.StatusForbidden, "otp_expired", "Token has expired or is invalid"}

// handleVerify is POST /auth/v1/verify with type "sms": checks the code, creates the user if missing (sign-up on
// OTP), confirms the phone and returns a new session.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Type  string `json:"type"`
		Phone string `json:"phone"`
		Token string `json:"token"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, err)
		return
	}
	if body.Type != "sms" {
		authError(w, http.StatusBadRequest, "validation_failed", "Verify requires a verification type (devauth supports \"sms\")")
		return
	}
	phone, err := phoneFrom(body.Phone)
	if err != nil {
		s.fail(w, err)
		return
	}
	var out sessionJSON
	err = s.db.tx(r.Context(), func(tx pgx.Tx) error {
		ok, err := s.codeMatches(r.Context(), tx, phone, strings.TrimSpace(body.Token))
		if err != nil {
			return err
		}
		if !ok {
			return errOTP
		}
		u, _, err := findOrCreatePhoneUser(r.Context(), tx, phone, true)
		if err != nil {
			return err
		}
		out, err = s.signIn(r.Context(), tx, u, "otp")
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// handleToken is POST /auth/v1/token?grant_type=password|refresh_token.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Query().Get("grant_type") {
	case "refresh_token":
		var body struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := decode(r, &body); err != nil {
			s.fail(w, err)
			return
		}
		if body.RefreshToken == "" {
			authError(w, http.StatusBadRequest, "validation_failed", "refresh_token required")
			return
		}
		out, err := s.refresh(r.Context(), body.RefreshToken)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	case "password":
		s.passwordGrant(w, r)
	default:
		authError(w, http.StatusBadRequest, "validation_failed", "unsupported_grant_type")
	}
}

// demoPassword is accepted for users without a stored password whose phone has a test OTP (the seed sets none).
const demoPassword = "password123"

var errCredentials = &apiError{http.StatusBadRequest, "invalid_credentials", "Invalid login credentials"}

// passwordOK checks a stored password: "sha256:<hex>" is devauth's own format; anything else (a bcrypt hash written
// by real GoTrue) cannot be checked without an extra module and is refused.
func (s *Server) passwordOK(u authUser, password string) bool {
	if u.Password == "" {
		_, testPhone := s.cfg.TestOTPs[u.Phone]
		return u.Phone != "" && (testPhone || s.cfg.AnyOTP) &&
			subtle.ConstantTimeCompare([]byte(password), []byte(demoPassword)) == 1
	}
	want, ok := strings.CutPrefix(u.Password, "sha256:")
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(want)) == 1
}

func (s *Server) passwordGrant(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Phone    string `json:"phone"`
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, err)
		return
	}
	var out sessionJSON
	err := s.db.tx(r.Context(), func(tx pgx.Tx) error {
		var u authUser
		var err error
		switch {
		case body.Phone != "":
			var ok bool
			if u, ok, err = findOrCreatePhoneUser(r.Context(), tx, normalizePhone(body.Phone), false); err != nil {
				return err
			} else if !ok {
				return errCredentials
			}
		case body.Email != "":
			u, err = scanUser(tx.QueryRow(r.Context(), `select `+userColumns+` from auth.users
				where lower(email) = lower($1) and deleted_at is null`, body.Email))
			if errors.Is(err, pgx.ErrNoRows) {
				return errCredentials
			} else if err != nil {
				return err
			}
		default:
			return &apiError{http.StatusBadRequest, "validation_failed", "missing email or phone"}
		}
		if !s.passwordOK(u, body.Password) {
			return errCredentials
		}
		out, err = s.signIn(r.Context(), tx, u, "password")
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// handleUser is GET /auth/v1/user: the caller's user object, refusing tokens of logged-out sessions.
func (s *Server) handleUser(w http.ResponseWriter, r *http.Request) {
	claims, aerr := s.bearerClaims(r)
	if aerr != nil {
		s.fail(w, aerr)
		return
	}
	if sid, _ := claims["session_id"].(string); sid != "" {
		ok, err := sessionState(r.Context(), s.db, sid, s.cfg.StrictSession)
		if err != nil {
			s.fail(w, err)
			return
		}
		if !ok {
			authError(w, http.StatusForbidden, "session_not_found", "Session from session_id claim in JWT does not exist")
			return
		}
	}
	sub, _ := claims["sub"].(string)
	var u authUser
	err := s.db.tx(r.Context(), func(tx pgx.Tx) error {
		var err error
		u, err = userByID(r.Context(), tx, sub)
		if errors.Is(err, pgx.ErrNoRows) {
			return &apiError{http.StatusForbidden, "user_not_found", "User from sub claim in JWT does not exist"}
		}
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u.toJSON())
}

// handleLogout is POST /auth/v1/logout?scope=global|local|others: revokes sessions; their refresh tokens stop working
// and /user refuses their access tokens (which stay cryptographically valid until they expire).
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	claims, aerr := s.bearerClaims(r)
	if aerr != nil {
		s.fail(w, aerr)
		return
	}
	sub, _ := claims["sub"].(string)
	sid, _ := claims["session_id"].(string)
	scope := r.URL.Query().Get("scope")
	const revoke = `update devauth.sessions set revoked_at = now(), revoked_reason = 'logout'
		where user_id::text = $1 and revoked_at is null`
	q, args := revoke, []any{sub}
	switch scope {
	case "", "global":
	case "local":
		q, args = revoke+` and id::text = $2`, append(args, sid)
	case "others":
		q, args = revoke+` and id::text <> $2`, append(args, sid)
	default:
		authError(w, http.StatusBadRequest, "validation_failed", "Unsupported logout scope \""+scope+"\"")
		return
	}
	err := s.db.with(r.Context(), func(c *pgx.Conn) error {
		_, err := c.Exec(r.Context(), q, args...)
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleStats is GET /auth/v1/_dev/stats[?refresh_token=…][&session_id=…]: how many refresh exchanges devauth has
// answered in total, for one token, and for one session family — so tests can assert "exactly one exchange".
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{}
	err := s.db.with(r.Context(), func(c *pgx.Conn) error {
		var total int64
		err := c.QueryRow(r.Context(), `select coalesce((select value from devauth.counters
			where name = 'refresh_exchanges'), 0)`).Scan(&total)
		if err != nil {
			return err
		}
		out["refresh_exchanges"] = total
		if tok := r.URL.Query().Get("refresh_token"); tok != "" {
			var n int64
			err := c.QueryRow(r.Context(), `select coalesce((select exchanges from devauth.refresh_tokens
				where token = $1), 0)`, tok).Scan(&n)
			if err != nil {
				return err
			}
			out["token_exchanges"] = n
		}
		if sid := r.URL.Query().Get("session_id"); sid != "" {
			var n, tokens int64
			err := c.QueryRow(r.Context(), `select coalesce(sum(exchanges), 0), count(*) from devauth.refresh_tokens
				where session_id::text = $1`, sid).Scan(&n, &tokens)
			if err != nil {
				return err
			}
			out["session_exchanges"] = n
			out["session_refresh_tokens"] = tokens
		}
		return nil
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
