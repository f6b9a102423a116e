package middleware

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
	"unsafe"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Defaults for [VerifierConfig]; a zero field means the default.
const (
	DefaultAudience              = "authenticated"
	DefaultLeeway                = 10 * time.Second
	MaxLeeway                    = 30 * time.Second // auth.md §2.3: small leeway, at most 30 s
	DefaultJWKSRefresh           = 10 * time.Minute // Supabase's edge caches the JWKS ~10 min anyway
	DefaultUnknownKIDMinInterval = time.Minute
	DefaultJWKSTimeout           = 5 * time.Second
	DefaultJWKSRetryMin          = 500 * time.Millisecond
	DefaultJWKSRetryMax          = 30 * time.Second
	DefaultCacheSize             = 10000
	// MaxTokenBytes bounds what is even parsed: a Supabase access token is about 1 KB; anything near this size is
	// an attack or a bug, and refusing it early keeps JSON decoding of attacker input cheap.
	MaxTokenBytes = 16 << 10
)

// VerifierConfig configures [NewVerifier]. At least one of JWKSURL and HS256Secret is required.
type VerifierConfig struct {
	// JWKSURL is <SUPABASE_URL>/auth/v1/.well-known/jwks.json. Empty: asymmetric tokens are refused.
	JWKSURL string
	// HS256Secret is the legacy project JWT secret. Empty: HS256 tokens are refused (never verified with a JWKS key).
	HS256Secret string
	// Issuer, when set, must equal the iss claim of user tokens (<SUPABASE_URL>/auth/v1).
	Issuer string
	// Audience must be contained in aud of user tokens. Zero: "authenticated".
	Audience string
	// Leeway for exp/nbf. Zero: 10 s. More than 30 s is a configuration error.
	Leeway time.Duration
	// JWKSRefresh is the periodic JWKS re-fetch interval. Zero: 10 min.
	JWKSRefresh time.Duration
	// UnknownKIDMinInterval rate-limits the JWKS re-fetch triggered by a token whose kid is unknown (one fetch, then
	// at most one per interval), so that forged kids cannot hammer the Auth server. Zero: 1 min.
	UnknownKIDMinInterval time.Duration
	// JWKSTimeout bounds each JWKS HTTP request, including the first one made by NewVerifier. Zero: 5 s.
	JWKSTimeout time.Duration
	// JWKSRetryMin and JWKSRetryMax bound the exponential backoff used while no key has ever been loaded.
	// Zero: 500 ms and 30 s.
	JWKSRetryMin, JWKSRetryMax time.Duration
	// CacheSize is the number of verified tokens remembered (keyed by SHA-256). Zero: 10000; negative: no cache.
	CacheSize int
	// HTTPClient fetches the JWKS. Zero: a client with JWKSTimeout.
	HTTPClient *http.Client
	// Logger receives JWKS failures. Zero: slog.Default().
	Logger *slog.Logger
}

// Verifier checks Supabase Auth access tokens locally. It is sealed: the accepted algorithms are pinned (ES256 and
// RS256 through the JWKS, HS256 only with a configured secret) and the key for a token is chosen by its algorithm,
// never by what the token claims about itself, so "none", HS256-signed-with-the-public-key and alg/key-type
// confusion cannot succeed. Safe for concurrent use.
type Verifier struct {
	log       *slog.Logger
	userP     *jwt.Parser // aud (+ iss) checked
	anyP      *jwt.Parser // signature and exp only: API-key JWTs have no aud and another iss
	hmac      []byte
	kf        keyfunc.Keyfunc
	keys      *jwkset.MemoryJWKSet // what the JWKS storage holds; nil without a JWKS URL
	leeway    time.Duration
	cache     *tokenCache
	jwksURL   string
	jwksOpts  jwkset.HTTPClientStorageOptions
	retryMin  time.Duration
	retryMax  time.Duration
	bootstrap chan struct{} // closed when the background bootstrap loop ends; used by tests
}

// NewVerifier builds a Verifier. It fails only on bad configuration, never because the JWKS endpoint is down: then
// it logs an error, Ready reports ErrKeysUnavailable, and a background loop (ended by ctx, which must therefore be
// long-lived, not a request context) retries with exponential backoff until keys arrive. Periodic refreshes also
// stop with ctx. A refresh that fails later keeps the keys already loaded.
func NewVerifier(ctx context.Context, cfg VerifierConfig) (*Verifier, error) {
	if cfg.JWKSURL == "" && cfg.HS256Secret == "" {
		return nil, errors.New("middleware: VerifierConfig needs JWKSURL or HS256Secret")
	}
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway {
		return nil, fmt.Errorf("middleware: Leeway %s outside 0..%s", cfg.Leeway, MaxLeeway)
	}
	v := &Verifier{
		log:      orDefault(cfg.Logger),
		leeway:   orDur(cfg.Leeway, DefaultLeeway),
		retryMin: orDur(cfg.JWKSRetryMin, DefaultJWKSRetryMin),
		retryMax: orDur(cfg.JWKSRetryMax, DefaultJWKSRetryMax),
	}
	size := cfg.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	v.cache = newTokenCache(size)

	methods := []string{"ES256", "RS256"}
	if cfg.HS256Secret != "" {
		v.hmac = []byte(cfg.HS256Secret)
		methods = append(methods, "HS256")
	}
	aud := cfg.Audience
	if aud == "" {
		aud = DefaultAudience
	}
	// Strict decoding: a signature segment with non-zero padding bits decodes to the same bytes in lenient base64,
	// so the token would verify here while PostgREST refuses it as "Not valid base64url".
	common := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithLeeway(v.leeway), jwt.WithExpirationRequired(),
		jwt.WithStrictDecoding()}
	userOpts := append(append([]jwt.ParserOption{}, common...), jwt.WithAudience(aud))
	if cfg.Issuer != "" {
		userOpts = append(userOpts, jwt.WithIssuer(cfg.Issuer))
	}
	v.userP = jwt.NewParser(userOpts...)
	v.anyP = jwt.NewParser(common...)

	if cfg.JWKSURL != "" {
		if err := v.startJWKS(ctx, cfg); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Ready reports nil once verification keys are usable: always with an HS256-only configuration, otherwise when the
// JWKS has been loaded at least once (it stays nil if the JWKS later becomes unreachable, since cached keys keep
// working). Use it for the readiness probe.
func (v *Verifier) Ready() error {
	if v.keys == nil || v.keysLoaded() {
		return nil
	}
	return ErrKeysUnavailable
}

// Verify checks a user access token: signature with a pinned algorithm, exp (required, with leeway), nbf, aud,
// iss when configured, role "authenticated" (else ErrNotUser) and a UUID sub, and refuses whatever PostgREST 12
// would refuse, so that a token we accept is one the database accepts too (see checkCompact and
// checkRegisteredClaims: a "crit" header, duplicate members, iat more than IssuedAtSkew ahead, non-canonical
// base64url, malformed StringOrURI claims, …). Errors wrap ErrTokenExpired, ErrTokenInvalid or ErrNotUser. ctx
// bounds a JWKS re-fetch for an unknown kid.
//
// Results are cached by SHA-256 of the token until the token expires; the returned Claims may be shared between
// callers and must not be modified.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) == 0 || len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: empty or oversize token (%d bytes)", ErrTokenInvalid, len(token))
	}
	var key [32]byte
	now := time.Now()
	if v.cache != nil {
		key = tokenHash(token)
		if c, ok := v.cache.get(key, now); ok {
			return c, nil
		}
	}
	c, err := v.parse(ctx, v.userP, token)
	if err != nil {
		return nil, err
	}
	if c.Role != "authenticated" {
		return nil, fmt.Errorf("%w: role %q", ErrNotUser, c.Role)
	}
	if !isUUID(c.Subject) {
		return nil, fmt.Errorf("%w: sub is not a UUID", ErrTokenInvalid)
	}
	if v.cache != nil {
		lean := *c
		lean.Raw = nil // see Claims: the fields above are what the routes use
		v.cache.put(key, &lean, c.ExpiresAt.Add(v.leeway), now)
	}
	return c, nil
}

// VerifyAny checks signature, algorithm and exp like Verify but accepts any role, audience, issuer and subject. It
// is for routes reserved to the service role (API-key JWTs carry no sub or aud): the caller MUST check Role itself.
// Not cached.
func (v *Verifier) VerifyAny(ctx context.Context, token string) (*Claims, error) {
	if len(token) == 0 || len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: empty or oversize token (%d bytes)", ErrTokenInvalid, len(token))
	}
	return v.parse(ctx, v.anyP, token)
}

// parse checks the token's form (checkCompact), runs the jwt parser with the sealed key function, applies
// checkRegisteredClaims, and maps errors onto the sentinels.
func (v *Verifier) parse(ctx context.Context, p *jwt.Parser, token string) (*Claims, error) {
	if err := checkCompact(token); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	m := jwt.MapClaims{}
	_, err := p.ParseWithClaims(token, m, v.keyfunc(ctx))
	if err != nil {
		// The parser checks claims only after the signature, so "expired" here means a genuine, expired token.
		if errors.Is(err, jwt.ErrTokenExpired) && !errors.Is(err, jwt.ErrTokenInvalidAudience) &&
			!errors.Is(err, jwt.ErrTokenInvalidIssuer) && !errors.Is(err, jwt.ErrTokenNotValidYet) {
			if rerr := checkRegisteredClaims(m, time.Now()); rerr != nil {
				return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, rerr)
			}
			c, cerr := claimsFromMap(m)
			if cerr == nil {
				return c, fmt.Errorf("%w: %v", ErrTokenExpired, err)
			}
		}
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if err := checkRegisteredClaims(m, time.Now()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	c, err := claimsFromMap(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	return c, nil
}

var (
	errAlgNotAllowed = errors.New("signing algorithm not allowed")
	errNoKID         = errors.New("asymmetric token without kid")
	errKeyMismatch   = errors.New("JWKS key type does not match the token algorithm")
)

// keyfunc picks the verification key from the algorithm: the HMAC secret for HS256 only, a JWKS key of the matching
// type for ES256 (P-256) and RS256 (>= 2048 bits). The JWK's own alg, when present, must match too (keyfunc checks).
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		switch alg {
		case "HS256":
			if v.hmac == nil {
				return nil, errAlgNotAllowed
			}
			return v.hmac, nil
		case "ES256", "RS256":
		default:
			return nil, errAlgNotAllowed
		}
		if v.kf == nil {
			return nil, errAlgNotAllowed
		}
		if kid, ok := t.Header["kid"].(string); !ok || kid == "" {
			return nil, errNoKID
		}
		key, err := v.kf.KeyfuncCtx(ctx)(t)
		if err != nil {
			return nil, err
		}
		switch k := key.(type) {
		case *ecdsa.PublicKey:
			if alg == "ES256" && k.Curve == elliptic.P256() {
				return k, nil
			}
		case *rsa.PublicKey:
			if alg == "RS256" && k.N.BitLen() >= 2048 {
				return k, nil
			}
		}
		return nil, errKeyMismatch
	}
}

// tokenHash is SHA-256 of the token without copying it: the cached path runs on every request, and the 1 KB copy
// a []byte conversion makes would be its only allocation. sha256 only reads its input, so the aliasing is safe.
func tokenHash(token string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

func orDefault(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}

func orDur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
