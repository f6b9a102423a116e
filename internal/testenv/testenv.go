// Package testenv gives integration tests the addresses of the real local stack that scripts/test.sh started
// (PostgreSQL, the real Supabase Auth and Storage, PostgREST, the gateway that serves them as one Supabase URL,
// Redis, the QryptChat frontend's page server) and helpers to create real users in it.
//
// Outside CI a test whose stack is not configured is skipped with the reason; under CI=true it fails, so that a
// broken stack can never turn the suite green by skipping.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/qryptchat/suparelay/internal/devkeys"
)

// Environment variables exported by scripts/stack for the tests.
const (
	EnvSupabaseURL  = "SUPARELAY_TEST_SUPABASE_URL"        // the gateway: /auth/v1, /rest/v1 and /storage/v1, like Kong
	EnvPostgRESTURL = "SUPARELAY_TEST_POSTGREST_URL"       // PostgREST directly (no /rest/v1 prefix)
	EnvAuthURL      = "SUPARELAY_TEST_AUTH_URL"            // Supabase Auth directly (no /auth/v1 prefix)
	EnvStorageURL   = "SUPARELAY_TEST_STORAGE_URL"         // Supabase Storage directly (no /storage/v1 prefix)
	EnvDatabaseURL  = "SUPARELAY_TEST_DATABASE_URL"        // superuser connection to the stack's database
	EnvTemplateDB   = "SUPARELAY_TEST_TEMPLATE_DB"         // database with only Auth's and Storage's schemas: copy it for fresh DBs
	EnvRedisURL     = "SUPARELAY_TEST_REDIS_URL"           // a real Redis
	EnvRedisCluster = "SUPARELAY_TEST_REDIS_CLUSTER_ADDRS" // a real Redis Cluster: three masters, host:port,…
	EnvAppURL       = "SUPARELAY_TEST_APP_URL"             // the origin the frontend was built for: where suparelay serves it
	EnvFrontendURL  = "SUPARELAY_TEST_FRONTEND_URL"        // the QryptChat frontend's adapter-node server (pages)
	EnvNodeBin      = "SUPARELAY_TEST_NODE_BIN"            // folder with the stack's node (Node 24)
)

// Get returns the environment variable name, or skips (fails under CI=true) when it is unset.
func Get(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: under CI the local stack must be running (use make test)", name)
		}
		t.Skipf("%s not set: run the tests with `make test` to start the local stack", name)
	}
	return v
}

func SupabaseURL(t testing.TB) string  { return Get(t, EnvSupabaseURL) }
func PostgRESTURL(t testing.TB) string { return Get(t, EnvPostgRESTURL) }
func DatabaseURL(t testing.TB) string  { return Get(t, EnvDatabaseURL) }
func RedisURL(t testing.TB) string     { return Get(t, EnvRedisURL) }

// RedisClusterAddrs returns the seed addresses of the stack's Redis Cluster.
func RedisClusterAddrs(t testing.TB) []string { return strings.Split(Get(t, EnvRedisCluster), ",") }
func AuthURL(t testing.TB) string             { return Get(t, EnvAuthURL) }
func StorageURL(t testing.TB) string          { return Get(t, EnvStorageURL) }
func TemplateDB(t testing.TB) string          { return Get(t, EnvTemplateDB) }
func AppURL(t testing.TB) string              { return Get(t, EnvAppURL) }
func FrontendURL(t testing.TB) string         { return Get(t, EnvFrontendURL) }

// DB opens a superuser connection to the stack's database, closed when the test ends.
func DB(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, DatabaseURL(t))
	if err != nil {
		t.Fatalf("connect to stack database: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// User is a real user of the stack: an auth.users row and (unless created with NoProfile) its public.users row.
type User struct {
	AuthID   string // auth uid (JWT sub)
	ID       string // internal id (public.users.id); empty without a profile
	Phone    string // E.164 with '+'
	Username string
}

// RandomHex returns n random bytes as hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewUser creates an auth user and its public.users profile directly in the database. Each call makes a unique
// phone number and username, so tests can run in parallel against one stack.
func NewUser(t testing.TB) User {
	t.Helper()
	return newUser(t, newAuthUser(t, ""))
}

// NewUserWithTestPhone is NewUser with a number of the test phone block (TestPhone), so that the user can also sign
// in through the real Supabase Auth by OTP.
func NewUserWithTestPhone(t testing.TB) User {
	t.Helper()
	return newUser(t, newAuthUser(t, TestPhone(t)))
}

func newUser(t testing.TB, u User) User {
	t.Helper()
	db := DB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := db.QueryRow(ctx,
		`insert into public.users (auth_user_id, phone_number, username, display_name)
		 values ($1, $2, $3, $3) returning id::text`, u.AuthID, u.Phone, u.Username).Scan(&u.ID)
	if err != nil {
		t.Fatalf("create public.users row: %v", err)
	}
	return u
}

// NewAuthUserNoProfile creates only the auth.users row (a signed-in caller who has not completed registration).
func NewAuthUserNoProfile(t testing.TB) User { t.Helper(); return newAuthUser(t, "") }

// newAuthUser inserts an auth.users row the way Supabase Auth does for a confirmed phone user; phone "" picks a
// random number outside the test phone block.
func newAuthUser(t testing.TB, phone string) User {
	t.Helper()
	db := DB(t)
	suffix := RandomHex(5)
	if phone == "" {
		// 10 random digits after +1555 (14 digits in all, inside E.164's 15): collisions between the thousands of
		// users a test run creates are negligible.
		var digits [10]byte
		_, _ = rand.Read(digits[:])
		phone = "+1555"
		for _, d := range digits {
			phone += fmt.Sprint(int(d) % 10)
		}
	}
	u := User{Phone: phone, Username: "t_" + suffix}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := db.QueryRow(ctx,
		// Supabase Auth finds users only in the nil instance and reads its token columns as strings (never null).
		`insert into auth.users (instance_id, id, aud, role, phone, phone_confirmed_at, raw_app_meta_data,
		                         raw_user_meta_data, confirmation_token, recovery_token, email_change_token_new,
		                         email_change, created_at, updated_at)
		 values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated', $1, now(),
		         '{"provider":"phone","providers":["phone"]}', '{}', '', '', '', '', now(), now()) returning id::text`,
		phone[1:]).Scan(&u.AuthID)
	if err != nil {
		t.Fatalf("create auth.users row: %v", err)
	}
	return u
}

// Token returns an ES256 access token for u, shaped like Supabase Auth's, valid for ttl (negative: already expired).
func (u User) Token(t testing.TB, ttl time.Duration) string {
	t.Helper()
	tok, err := devkeys.SignES256(UserClaims(u, ttl))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// UserClaims returns the claims Supabase Auth puts in a phone user's access token.
func UserClaims(u User, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": "http://127.0.0.1:54321/auth/v1", "aud": "authenticated", "sub": u.AuthID,
		"role": "authenticated", "exp": now.Add(ttl).Unix(), "iat": now.Add(-time.Minute).Unix(),
		"session_id": "00000000-0000-4000-8000-" + RandomHex(6), "aal": "aal1",
		"amr":   []map[string]any{{"method": "otp", "timestamp": now.Unix()}},
		"phone": trimPlus(u.Phone), "email": "",
		"app_metadata":  map[string]any{"provider": "phone", "providers": []string{"phone"}},
		"user_metadata": map[string]any{}, "is_anonymous": false,
	}
}

func trimPlus(p string) string {
	if len(p) > 0 && p[0] == '+' {
		return p[1:]
	}
	return p
}
