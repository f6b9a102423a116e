package middleware

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/time/rate"
)

// startJWKS wires jwkset/keyfunc so that failures are visible and keep being retried.
//
// Why not keyfunc.NewDefaultCtx: its storage silently starts empty when the endpoint is down, refreshes only hourly,
// logs to slog.Default, and waits up to a minute on the unknown-kid rate limiter inside a request. Here the storage
// writes into a MemoryJWKSet we own (so Ready can look at it and the bootstrap loop can fill it), refreshes every
// JWKSRefresh, logs through our logger, and an unknown kid triggers one re-fetch and then at most one per
// UnknownKIDMinInterval; a request that would have to wait longer than JWKSTimeout for the limiter fails at once.
func (v *Verifier) startJWKS(ctx context.Context, cfg VerifierConfig) error {
	timeout := orDur(cfg.JWKSTimeout, DefaultJWKSTimeout)
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	v.keys = jwkset.NewMemoryStorage()
	v.jwksURL = cfg.JWKSURL
	v.jwksOpts = jwkset.HTTPClientStorageOptions{
		Client:      client,
		Ctx:         ctx,
		HTTPTimeout: timeout,
		Storage:     v.keys,
	}
	periodic := v.jwksOpts
	periodic.NoErrorReturnFirstHTTPReq = true
	periodic.RefreshInterval = orDur(cfg.JWKSRefresh, DefaultJWKSRefresh)
	periodic.RefreshErrorHandler = func(ctx context.Context, err error) {
		// Loud on purpose: a JWKS that cannot be fetched means new keys will not be trusted. Keys already loaded
		// keep working.
		v.log.ErrorContext(ctx, "auth: JWKS fetch failed; keeping previously loaded keys",
			"url", cfg.JWKSURL, "keys_loaded", v.keysLoaded(), "err", err)
	}
	store, err := jwkset.NewStorageFromHTTP(cfg.JWKSURL, periodic) // first fetch happens here, bounded by timeout
	if err != nil {
		return fmt.Errorf("middleware: JWKS URL: %w", err)
	}
	hc, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{cfg.JWKSURL: store},
		RateLimitWaitMax:  timeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(orDur(cfg.UnknownKIDMinInterval, DefaultUnknownKIDMinInterval)), 1),
	})
	if err != nil {
		return fmt.Errorf("middleware: JWKS client: %w", err)
	}
	// Keys marked for encryption must never verify signatures; Supabase publishes use "sig", some issuers omit it.
	v.kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: hc, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return fmt.Errorf("middleware: keyfunc: %w", err)
	}
	v.bootstrap = make(chan struct{})
	if v.keysLoaded() {
		close(v.bootstrap)
		return nil
	}
	v.log.ErrorContext(ctx, "auth: JWKS not loaded at startup; asymmetric user tokens are refused until it loads, "+
		"retrying in the background", "url", cfg.JWKSURL)
	go v.bootstrapLoop(ctx)
	return nil
}

// bootstrapLoop retries the first JWKS load with exponential backoff until keys are present or ctx ends. Each try
// is one synchronous jwkset fetch into the shared memory store (RefreshInterval 0 starts no goroutine).
func (v *Verifier) bootstrapLoop(ctx context.Context) {
	defer close(v.bootstrap)
	delay := v.retryMin
	t := time.NewTimer(delay)
	defer t.Stop()
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if v.keysLoaded() { // the periodic refresh or an unknown-kid refresh got there first
			v.log.InfoContext(ctx, "auth: JWKS loaded", "url", v.jwksURL)
			return
		}
		_, err := jwkset.NewStorageFromHTTP(v.jwksURL, v.jwksOpts)
		if err == nil && v.keysLoaded() {
			v.log.InfoContext(ctx, "auth: JWKS loaded", "url", v.jwksURL, "attempt", attempt)
			return
		}
		if err == nil {
			err = fmt.Errorf("JWKS has no usable keys")
		}
		delay = min(2*delay, v.retryMax)
		v.log.ErrorContext(ctx, "auth: JWKS still not loaded", "url", v.jwksURL, "attempt", attempt,
			"retry_in", delay, "err", err)
		t.Reset(delay)
	}
}

func (v *Verifier) keysLoaded() bool {
	ks, err := v.keys.KeyReadAll(context.Background())
	return err == nil && len(ks) > 0
}
