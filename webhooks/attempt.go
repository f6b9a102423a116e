package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// maxResponseDrain is how much of a receiver's answer is read (and discarded) so the connection can be reused.
const maxResponseDrain = 64 << 10

// newClient builds the HTTP client whose dialer enforces policy on every connection and which never follows
// redirects or uses environment proxies (a proxy would make the dial-time check inspect the proxy instead).
func newClient(policy addressPolicy, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: policy.control}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// attempt makes one try of a claimed delivery and settles it in the Store: done, due again later, or dead.
func (d *Deliverer) attempt(ctx context.Context, c Claim) {
	var j storedJob
	if err := json.Unmarshal(c.Job, &j); err != nil {
		d.dead(ctx, c, "", "", "error", "undecodable stored job: "+err.Error())
		return
	}
	host := ""
	if u, err := url.Parse(j.URL); err == nil {
		host = u.Host // for logs: URLs may carry credentials in their query
	}
	if c.Attempt > d.cfg.MaxAttempts {
		// Earlier claimers died mid-attempt (their attempts stay counted): a delivery that keeps crashing nodes
		// must not be retried for ever.
		d.dead(ctx, c, host, j.Event, "error", "attempts exhausted by claimers that did not finish")
		return
	}
	status, retryAfter, err := d.send(ctx, j, c)
	if err == nil && status >= 200 && status <= 299 {
		d.m.delivered.Inc()
		d.settle(ctx, c, func(sctx context.Context) (bool, error) { return d.store.Done(sctx, c) })
		return
	}
	if ctx.Err() != nil {
		// Shutting down: give the delivery back, due at once and this attempt not counted, for the next claimer.
		d.settle(ctx, c, func(sctx context.Context) (bool, error) { return d.store.Retry(sctx, c, 0, false) })
		return
	}
	retryable := retryableStatus(status)
	if err != nil {
		retryable = !errors.Is(err, ErrForbiddenAddress)
	}
	if retryable && c.Attempt < d.cfg.MaxAttempts {
		delay := d.backoff(c.Attempt, retryAfter)
		if d.settle(ctx, c, func(sctx context.Context) (bool, error) { return d.store.Retry(sctx, c, delay, true) }) {
			d.m.retried.Inc()
		}
		return
	}
	if err != nil {
		d.dead(ctx, c, host, j.Event, "error", err.Error())
	} else {
		d.dead(ctx, c, host, j.Event, "status", status)
	}
}

// dead removes a delivery that will not be attempted again, with a log line and the failed metric.
func (d *Deliverer) dead(ctx context.Context, c Claim, host, event string, why string, detail any) {
	if !d.settle(ctx, c, func(sctx context.Context) (bool, error) { return d.store.Done(sctx, c) }) {
		return
	}
	d.m.failed.Inc()
	d.log.Warn("webhook delivery failed", "host", host, "event", event, "delivery", c.ID, "attempts", c.Attempt, why, detail)
}

// settle runs one Store step after an attempt, even while shutting down (bounded by storeOpTimeout), and reports
// whether it took effect. A lost claim means the lease ran out and another claimer may attempt the delivery again:
// at-least-once, never silently dropped.
func (d *Deliverer) settle(ctx context.Context, c Claim, step func(context.Context) (bool, error)) bool {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeOpTimeout)
	defer cancel()
	ok, err := step(sctx)
	switch {
	case err != nil:
		d.m.storeErrors.Inc()
		d.log.Warn("webhook store update failed: the delivery is attempted again when its lease ends",
			"delivery", c.ID, "attempt", c.Attempt, "error", err)
		return false
	case !ok:
		d.m.leaseLost.Inc()
		d.log.Warn("webhook claim lost before the attempt was settled", "delivery", c.ID, "attempt", c.Attempt)
		return false
	}
	return true
}

func retryableStatus(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return true
	case status >= 500:
		return true
	}
	return false
}

// send makes one HTTP attempt and returns the status and any Retry-After delay.
func (d *Deliverer) send(ctx context.Context, j storedJob, c Claim) (int, time.Duration, error) {
	body := []byte(j.Body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	secret := j.Secret
	if secret == "" {
		secret = d.cfg.SigningSecret
	}
	ts := strconv.FormatInt(d.now().Unix(), 10)
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", d.cfg.UserAgent)
	h.Set("X-Qrypt-Event", j.Event)
	h.Set("X-Qrypt-Delivery", c.ID)
	h.Set("X-Qrypt-Attempt", strconv.Itoa(c.Attempt))
	h.Set("X-Qrypt-Timestamp", ts)
	h.Set("X-Qrypt-Signature", Sign([]byte(secret), ts, body))
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	var ra time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		ra = time.Duration(min(s, 86400)) * time.Second
	}
	return resp.StatusCode, ra, nil
}

// backoff is BaseBackoff·2^(attempt-1), capped at MaxBackoff, with "equal jitter" (half fixed, half random) so
// receivers recovering from an outage are not hit by synchronized retries; a Retry-After within the cap wins.
func (d *Deliverer) backoff(attempt int, retryAfter time.Duration) time.Duration {
	delay := d.cfg.MaxBackoff
	if attempt-1 < 30 {
		delay = min(d.cfg.BaseBackoff<<(attempt-1), d.cfg.MaxBackoff)
	}
	half := delay / 2
	delay = half + rand.N(half+1)
	if retryAfter > delay && retryAfter <= d.cfg.MaxBackoff {
		delay = retryAfter
	}
	return delay
}
