package supa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds every call to Supabase unless Config.Timeout says otherwise.
const DefaultTimeout = 10 * time.Second

// maxResponse caps how much of a Supabase answer is read into memory (PostgREST caps rows at 1000 anyway).
const maxResponse = 32 << 20

// Config configures a Client.
type Config struct {
	URL            string // internal Supabase URL, e.g. http://127.0.0.1:54321
	AnonKey        string // sent as apikey on every call (the gateway requires it)
	ServiceRoleKey string // used only by the named methods of service.go; may be empty
	Timeout        time.Duration
	Transport      http.RoundTripper // shared by all calls; zero = a tuned clone of http.DefaultTransport
	// MaxConcurrent bounds the PostgREST calls in flight from this client (keep it below PostgREST's pool, divided
	// by the nodes); a call that finds no slot within QueueWait fails with ErrOverloaded. 0: no bound.
	MaxConcurrent int
	QueueWait     time.Duration
	// Observe, when set, is told about every HTTP exchange with Supabase (for upstream metrics). It must be quick.
	Observe func(Call)
}

// Client is safe for concurrent use and holds no user token.
type Client struct {
	base       string // without trailing slash
	storage    string // Storage API base, without trailing slash
	anonKey    string
	serviceKey string
	timeout    time.Duration
	http       *http.Client
	gate       *gate // PostgREST calls in flight; nil = unbounded
}

// New validates cfg and builds a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("supa: invalid Supabase URL %q", cfg.URL)
	}
	if cfg.AnonKey == "" {
		return nil, errors.New("supa: anon key is required")
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 512
		t.MaxIdleConnsPerHost = 256
		t.IdleConnTimeout = 90 * time.Second
		tr = t
	}
	if cfg.Observe != nil {
		tr = observed{next: tr, observe: cfg.Observe}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &Client{
		base:    strings.TrimRight(cfg.URL, "/"),
		anonKey: cfg.AnonKey, serviceKey: cfg.ServiceRoleKey,
		timeout: timeout, http: &http.Client{Transport: tr},
		gate: newGate(cfg.MaxConcurrent, cfg.QueueWait),
	}
	c.storage = c.base + "/storage/v1" // the gateway serves Storage there, as Supabase's does
	return c, nil
}

// HasServiceRole reports whether the service-role key is configured.
func (c *Client) HasServiceRole() bool { return c.serviceKey != "" }

// Rest is a token-scoped PostgREST handle. It is a value: copying it cannot leak the token to another user.
type Rest struct {
	c     *Client
	token string
}

// As returns the PostgREST handle that acts as the user whose access token this is: Postgres row-level security
// applies to everything done through it.
func (c *Client) As(token string) Rest { return Rest{c: c, token: token} }

// Anon returns the handle that acts as the anon role.
func (c *Client) Anon() Rest { return Rest{c: c, token: c.anonKey} }

// service returns the service-role handle. Unexported on purpose: only the named methods in service.go use it.
func (c *Client) service() (Rest, error) {
	if c.serviceKey == "" {
		return Rest{}, &Error{Op: "service role", Err: errors.New("SUPABASE_SERVICE_ROLE_KEY is not configured")}
	}
	return Rest{c: c, token: c.serviceKey}, nil
}

// Request describes one PostgREST call.
type Request struct {
	Method string
	Path   string     // table or "rpc/<fn>", without /rest/v1/
	Query  url.Values // PostgREST filters, select, order, limit …
	Body   any        // marshalled as JSON when non-nil; json.RawMessage is sent as is
	Prefer []string   // Prefer header values, e.g. "return=representation"
	Single bool       // ask for exactly one object (PGRST116 → KindNotFound when none)
	Op     string     // for error messages and logs
}

// Do runs req and decodes a 2xx JSON answer into out (when out is non-nil and the answer has a body).
func (r Rest) Do(ctx context.Context, req Request, out any) error {
	var body io.Reader
	if req.Body != nil {
		var b []byte
		switch v := req.Body.(type) {
		case json.RawMessage:
			b = v
		case []byte:
			b = v
		default:
			var err error
			if b, err = json.Marshal(v); err != nil {
				return &Error{Op: req.Op, Err: err}
			}
		}
		body = bytes.NewReader(b)
	}
	u := r.c.base + "/rest/v1/" + req.Path
	if len(req.Query) > 0 {
		u += "?" + req.Query.Encode()
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Method, u, body)
	if err != nil {
		return &Error{Op: req.Op, Err: err}
	}
	hreq.Header.Set("apikey", r.c.anonKey)
	if r.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+r.token)
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if req.Single {
		hreq.Header.Set("Accept", "application/vnd.pgrst.object+json")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	if len(req.Prefer) > 0 {
		hreq.Header.Set("Prefer", strings.Join(req.Prefer, ","))
	}
	if err := r.c.gate.enter(ctx); err != nil {
		return &Error{Op: req.Op, Err: err}
	}
	defer r.c.gate.leave()
	return r.c.send(ctx, hreq, req.Op, out)
}

// send performs hreq within the client timeout, turns non-2xx answers into *Error and decodes JSON into out.
func (c *Client) send(ctx context.Context, hreq *http.Request, op string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.http.Do(hreq.WithContext(ctx))
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return &Error{Op: op, Status: 0, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		return decodeError(op, resp.StatusCode, data)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &Error{Op: op, Status: resp.StatusCode, Message: "undecodable answer", Err: err}
	}
	return nil
}

// decodeError reads PostgREST's {code,message,details,hint}, Auth's {error_code,msg} or Storage's
// {statusCode,error,message} error bodies.
func decodeError(op string, status int, data []byte) *Error {
	e := &Error{Op: op, Status: status}
	var body map[string]any
	if json.Unmarshal(data, &body) == nil {
		e.Code = firstString(body, "error_code", "code", "error")
		e.Message = firstString(body, "message", "msg", "error_description", "error")
		e.Details = firstString(body, "details")
		e.Hint = firstString(body, "hint")
	} else {
		e.Message = strings.TrimSpace(string(data))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200]
		}
	}
	return e
}

func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			if v != "" {
				return v
			}
		case float64:
			return fmt.Sprint(int(v))
		}
	}
	return ""
}

// Select reads rows of table matching query into out (a pointer to a slice, or json.RawMessage).
func (r Rest) Select(ctx context.Context, table string, query url.Values, out any) error {
	return r.Do(ctx, Request{Method: http.MethodGet, Path: table, Query: query, Op: "select " + table}, out)
}

// SelectOne reads exactly one row; none is a KindNotFound error.
func (r Rest) SelectOne(ctx context.Context, table string, query url.Values, out any) error {
	return r.Do(ctx, Request{Method: http.MethodGet, Path: table, Query: query, Single: true, Op: "select one " + table}, out)
}

// Insert inserts body (an object or an array) and returns the inserted rows (shaped by query's select) into out.
func (r Rest) Insert(ctx context.Context, table string, body any, query url.Values, out any, prefer ...string) error {
	p := append([]string{"return=representation"}, prefer...)
	if out == nil {
		p[0] = "return=minimal"
	}
	return r.Do(ctx, Request{Method: http.MethodPost, Path: table, Query: query, Body: body, Prefer: p, Op: "insert " + table}, out)
}

// Update patches the rows matching query with body and returns them into out.
func (r Rest) Update(ctx context.Context, table string, body any, query url.Values, out any) error {
	p := "return=representation"
	if out == nil {
		p = "return=minimal"
	}
	return r.Do(ctx, Request{Method: http.MethodPatch, Path: table, Query: query, Body: body, Prefer: []string{p}, Op: "update " + table}, out)
}

// Delete removes the rows matching query and returns them into out.
func (r Rest) Delete(ctx context.Context, table string, query url.Values, out any) error {
	p := "return=representation"
	if out == nil {
		p = "return=minimal"
	}
	return r.Do(ctx, Request{Method: http.MethodDelete, Path: table, Query: query, Prefer: []string{p}, Op: "delete " + table}, out)
}

// RPC calls a Postgres function with named arguments.
func (r Rest) RPC(ctx context.Context, fn string, args any, out any) error {
	if args == nil {
		args = map[string]any{}
	}
	return r.Do(ctx, Request{Method: http.MethodPost, Path: "rpc/" + fn, Body: args, Op: "rpc " + fn}, out)
}

// Ping checks that PostgREST answers (any HTTP answer from it counts; the gateway's 5xx does not).
func (c *Client) Ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/rest/v1/", nil)
	if err != nil {
		return err
	}
	req.Header.Set("apikey", c.anonKey)
	req.Header.Set("Authorization", "Bearer "+c.anonKey)
	err = c.send(ctx, req, "ping", nil)
	var e *Error
	if errors.As(err, &e) && e.Status > 0 && e.Status < 500 {
		return nil
	}
	return err
}

// PingStorage checks that Supabase Storage answers its status route (any answer below 500 from it counts; a
// gateway's 5xx or a broken connection does not).
func (c *Client) PingStorage(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.storage+"/status", nil)
	if err != nil {
		return err
	}
	req.Header.Set("apikey", c.anonKey)
	err = c.send(ctx, req, "storage status", nil)
	var e *Error
	if errors.As(err, &e) && e.Status > 0 && e.Status < 500 {
		return nil
	}
	return err
}

// Q builds url.Values from alternating key/value pairs: Q("select", "id", "id", "eq."+id).
func Q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// In formats a PostgREST in.(…) filter for ids (which the caller has validated as UUIDs).
func In(ids []string) string { return "in.(" + strings.Join(ids, ",") + ")" }
