package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// sessionJSON is the session object Supabase Auth returns from /verify and /token.
type sessionJSON struct {
	AccessToken  string   `json:"access_token"`
	TokenType    string   `json:"token_type"`
	ExpiresIn    int64    `json:"expires_in"`
	ExpiresAt    int64    `json:"expires_at"`
	RefreshToken string   `json:"refresh_token"`
	User         userJSON `json:"user"`
}

// userJSON is GoTrue's user object.
type userJSON struct {
	ID               string         `json:"id"`
	Aud              string         `json:"aud"`
	Role             string         `json:"role"`
	Email            string         `json:"email"`
	EmailConfirmedAt *string        `json:"email_confirmed_at,omitempty"`
	Phone            string         `json:"phone"`
	PhoneConfirmedAt *string        `json:"phone_confirmed_at,omitempty"`
	ConfirmedAt      *string        `json:"confirmed_at,omitempty"`
	LastSignInAt     *string        `json:"last_sign_in_at,omitempty"`
	AppMetadata      map[string]any `json:"app_metadata"`
	UserMetadata     map[string]any `json:"user_metadata"`
	Identities       []identityJSON `json:"identities"`
	CreatedAt        string         `json:"created_at"`
	UpdatedAt        string         `json:"updated_at"`
	IsAnonymous      bool           `json:"is_anonymous"`
}

type identityJSON struct {
	IdentityID   string         `json:"identity_id"`
	ID           string         `json:"id"`
	UserID       string         `json:"user_id"`
	IdentityData map[string]any `json:"identity_data"`
	Provider     string         `json:"provider"`
	LastSignInAt *string        `json:"last_sign_in_at,omitempty"`
	CreatedAt    string         `json:"created_at"`
	UpdatedAt    string         `json:"updated_at"`
	Email        string         `json:"email"`
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func tsp(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := ts(*t)
	return &s
}

// toJSON renders the user as GoTrue does. There is no auth.identities table on the local stack, so a phone user's
// identity is synthesised (identity_id derived from the user id, stable across calls).
func (u authUser) toJSON() userJSON {
	out := userJSON{
		ID: u.ID, Aud: u.Aud, Role: u.Role, Email: u.Email, Phone: u.Phone,
		EmailConfirmedAt: tsp(u.EmailConfirmedAt), PhoneConfirmedAt: tsp(u.PhoneConfirmedAt),
		ConfirmedAt: tsp(u.ConfirmedAt), LastSignInAt: tsp(u.LastSignInAt),
		AppMetadata: u.AppMeta, UserMetadata: u.UserMeta, Identities: []identityJSON{},
		CreatedAt: ts(u.CreatedAt), UpdatedAt: ts(u.UpdatedAt), IsAnonymous: u.IsAnonymous,
	}
	if out.ConfirmedAt == nil && out.PhoneConfirmedAt != nil {
		out.ConfirmedAt = out.PhoneConfirmedAt
	}
	if u.Phone != "" {
		out.Identities = append(out.Identities, identityJSON{
			IdentityID: identityID(u.ID), ID: u.ID, UserID: u.ID, Provider: "phone",
			IdentityData: map[string]any{"email_verified": false, "phone": u.Phone,
				"phone_verified": u.PhoneConfirmedAt != nil, "sub": u.ID},
			LastSignInAt: tsp(u.LastSignInAt), CreatedAt: ts(u.CreatedAt), UpdatedAt: ts(u.UpdatedAt),
		})
	}
	return out
}

// identityID derives a UUID-shaped id from the user id: reversing its hex digits keeps it unique and stable.
func identityID(userID string) string {
	hex := []rune(strings.ReplaceAll(userID, "-", ""))
	if len(hex) != 32 {
		return userID
	}
	for i, j := 0, len(hex)-1; i < j; i, j = i+1, j-1 {
		hex[i], hex[j] = hex[j], hex[i]
	}
	h := string(hex)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// issue signs an access token for (user, session) with Supabase Auth's claims and wraps it in a session object.
func (s *Server) issue(u authUser, sess session, refresh string) (sessionJSON, error) {
	now := s.now()
	exp := now.Add(s.cfg.JWTExpiry)
	claims := jwt.MapClaims{
		"iss": s.cfg.Issuer, "aud": "authenticated", "sub": u.ID, "role": "authenticated",
		"exp": exp.Unix(), "iat": now.Unix(), "session_id": sess.ID, "aal": sess.AAL,
		"amr":   []map[string]any{{"method": sess.AMRMethod, "timestamp": sess.AMRAt.Unix()}},
		"phone": u.Phone, "email": u.Email,
		"app_metadata": u.AppMeta, "user_metadata": u.UserMeta, "is_anonymous": u.IsAnonymous,
	}
	tok, err := devkeys.SignES256(claims)
	if err != nil {
		return sessionJSON{}, err
	}
	return sessionJSON{
		AccessToken: tok, TokenType: "bearer", ExpiresIn: int64(s.cfg.JWTExpiry / time.Second),
		ExpiresAt: exp.Unix(), RefreshToken: refresh, User: u.toJSON(),
	}, nil
}

// signIn finds (or creates) the phone user, records the sign-in and starts a session.
func (s *Server) signIn(ctx context.Context, tx pgx.Tx, u authUser, method string) (sessionJSON, error) {
	u, err := markSignedIn(ctx, tx, u.ID, method == "otp")
	if err != nil {
		return sessionJSON{}, err
	}
	sess, refresh, err := createSession(ctx, tx, u.ID, method)
	if err != nil {
		return sessionJSON{}, err
	}
	return s.issue(u, sess, refresh)
}

var (
	errRefreshNotFound = &apiError{http.StatusBadRequest, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found"}
	errRefreshUsed     = &apiError{http.StatusBadRequest, "refresh_token_already_used", "Invalid Refresh Token: Already Used"}
)

// refresh exchanges a refresh token with GoTrue's rotation semantics (auth.md §7):
//   - the active token rotates: it is marked used and a child token is issued, same session;
//   - the immediate parent of the active token returns the active token again (no new rotation);
//   - any other used token presented within ReuseInterval of its use also returns the active token;
//   - later, the answer is refresh_token_already_used and the whole session family is revoked.
//
// Every presentation is counted (globally and on the token) so tests can assert how many exchanges happened. The
// session row is locked, so concurrent exchanges of one family serialise, across processes too. Failures that
// change state (family revocation, counters) are committed, hence the result-in-variable shape.
func (s *Server) refresh(ctx context.Context, token string) (sessionJSON, error) {
	var out sessionJSON
	var fail *apiError
	err := s.db.tx(ctx, func(tx pgx.Tx) error {
		if err := bumpCounter(ctx, tx, "refresh_exchanges"); err != nil {
			return err
		}
		var sessID string
		err := tx.QueryRow(ctx, `select session_id::text from devauth.refresh_tokens where token = $1`, token).Scan(&sessID)
		if errors.Is(err, pgx.ErrNoRows) {
			fail = errRefreshNotFound
			return nil
		} else if err != nil {
			return err
		}
		var sess session
		err = tx.QueryRow(ctx, `select id::text, user_id::text, aal, amr_method, amr_at,
			case when revoked_at is null then null else coalesce(revoked_reason, 'logout') end
			from devauth.sessions where id::text = $1 for update`, sessID).
			Scan(&sess.ID, &sess.UserID, &sess.AAL, &sess.AMRMethod, &sess.AMRAt, &sess.RevokedReason)
		if err != nil {
			return err
		}
		var parent *string
		var used, withinReuse bool
		err = tx.QueryRow(ctx, `update devauth.refresh_tokens set exchanges = exchanges + 1 where token = $1
			returning parent, used_at is not null, coalesce(now() - used_at <= make_interval(secs => $2), false)`,
			token, s.cfg.ReuseInterval.Seconds()).Scan(&parent, &used, &withinReuse)
		if err != nil {
			return err
		}
		if sess.RevokedReason != nil {
			// A logged-out session's tokens are gone in GoTrue; a family revoked for reuse reports reuse.
			fail = errRefreshNotFound
			if *sess.RevokedReason == "reuse" {
				fail = errRefreshUsed
			}
			return nil
		}
		u, err := userByID(ctx, tx, sess.UserID)
		if errors.Is(err, pgx.ErrNoRows) {
			fail = errRefreshNotFound
			return nil
		} else if err != nil {
			return err
		}
		if !used {
			if _, err := tx.Exec(ctx, `update devauth.refresh_tokens set used_at = now() where token = $1`, token); err != nil {
				return err
			}
			child, err := insertRefreshToken(ctx, tx, sess.ID, &token)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `update devauth.sessions set updated_at = now() where id::text = $1`, sess.ID); err != nil {
				return err
			}
			out, err = s.issue(u, sess, child)
			return err
		}
		var active string
		var activeParent *string
		err = tx.QueryRow(ctx, `select token, parent from devauth.refresh_tokens
			where session_id::text = $1 and used_at is null order by created_at desc limit 1`, sess.ID).Scan(&active, &activeParent)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		isParentOfActive := active != "" && activeParent != nil && *activeParent == token
		if active != "" && (isParentOfActive || withinReuse) {
			out, err = s.issue(u, sess, active)
			return err
		}
		if _, err := tx.Exec(ctx, `update devauth.sessions set revoked_at = now(), revoked_reason = 'reuse'
			where id::text = $1`, sess.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `update devauth.refresh_tokens set used_at = coalesce(used_at, now())
			where session_id::text = $1`, sess.ID); err != nil {
			return err
		}
		s.log.Warn("refresh token reused outside the reuse interval: session family revoked", "session_id", sess.ID)
		fail = errRefreshUsed
		return nil
	})
	if err != nil {
		return out, err
	}
	if fail != nil {
		return out, fail
	}
	return out, nil
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// bearerClaims verifies the request's Bearer token like GoTrue: ES256 with the dev key (by kid) or the legacy
// HS256 secret; exp required; sub a UUID. Errors are GoTrue's responses.
func (s *Server) bearerClaims(r *http.Request) (jwt.MapClaims, *apiError) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(tok) == "" {
		return nil, &apiError{http.StatusUnauthorized, "no_authorization", "This endpoint requires a Bearer token"}
	}
	pub := &devkeys.PrivateKey().PublicKey
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(strings.TrimSpace(tok), claims, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case "ES256":
			if kid, _ := t.Header["kid"].(string); kid != "" && kid != devkeys.KID {
				return nil, fmt.Errorf("unknown kid %q", kid)
			}
			return pub, nil
		case "HS256":
			return []byte(devkeys.JWTSecret), nil
		}
		return nil, fmt.Errorf("unexpected signing method %s", t.Method.Alg())
	}, jwt.WithValidMethods([]string{"ES256", "HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(0))
	if err != nil {
		return nil, &apiError{http.StatusForbidden, "bad_jwt", "invalid JWT: unable to parse or verify signature, " + err.Error()}
	}
	sub, _ := claims["sub"].(string)
	if !uuidRE.MatchString(sub) {
		return nil, &apiError{http.StatusForbidden, "bad_jwt", "invalid claim: missing sub claim"}
	}
	return claims, nil
}
