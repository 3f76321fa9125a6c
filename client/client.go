// Package client is a Go client of Drover's HTTP API (API.md): typed
// methods that send and answer protocol types, blocking queries, and API
// errors decoded as *protocol.Error. The CLI and the tests use it.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// DefaultAddress is the API address used when Config.Address is empty.
const DefaultAddress = "http://127.0.0.1:4700"

// HeaderIndex is the header carrying the Raft index of an answer.
const HeaderIndex = "X-Drover-Index"

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// Config configures a Client. Zero values take the defaults.
type Config struct {
	// Address of any server, "http(s)://host:port"; a bare "host:port"
	// means http. DefaultAddress when empty.
	Address string
	// Token is sent as "Authorization: Bearer TOKEN" when not empty.
	Token string
	// TLS configures HTTPS when HTTPClient is nil.
	TLS *tls.Config
	// HTTPClient sends the requests. It must not have a Timeout shorter than
	// the blocking queries and log streams it serves: requests are bounded
	// by their context instead.
	HTTPClient *http.Client
	// OnResend, when set, is told each time a change is sent again because
	// the outcome of the attempt before was unknown (send).
	OnResend func(msg string)
}

// Client talks to a Drover server. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	token    string
	hc       *http.Client
	onResend func(string)
}

// New returns a client of the server at cfg.Address.
func New(cfg Config) (*Client, error) {
	addr := strings.TrimSpace(cfg.Address)
	if addr == "" {
		addr = DefaultAddress
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", cfg.Address, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("address %q: want http(s)://host:port", cfg.Address)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	hc := cfg.HTTPClient
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS
		}
		hc = &http.Client{Transport: t}
	}
	return &Client{base: u, token: cfg.Token, hc: hc, onResend: cfg.OnResend}, nil
}

// Address is the base address the client sends requests to.
func (c *Client) Address() string { return c.base.String() }

// QueryOptions tune a read.
type QueryOptions struct {
	// Index makes the read block until the state has passed it (a blocking
	// query), or until Wait ends; 0 answers at once.
	Index uint64
	// Wait bounds a blocking query; the server's default (30s) when zero.
	Wait time.Duration
	// Stale lets any server answer from its own state.
	Stale bool
}

func (q *QueryOptions) values(v url.Values) url.Values {
	if q == nil {
		return v
	}
	if v == nil {
		v = url.Values{}
	}
	if q.Index > 0 {
		v.Set("index", strconv.FormatUint(q.Index, 10))
		if q.Wait > 0 {
			v.Set("wait", q.Wait.String())
		}
	}
	if q.Stale {
		v.Set("stale", "true")
	}
	return v
}

// Meta is what an answer says besides its body.
type Meta struct {
	// Index is X-Drover-Index: the Raft index a write was committed at, or
	// the index of the state a read saw (the Index of the next blocking
	// query).
	Index uint64
}

// Request is one API call for Do.
type Request struct {
	Method string
	Path   string // under the base address, starting with /v1/, segments escaped
	Query  url.Values
	// Body is sent as JSON, or as is when it is an io.Reader.
	Body   any
	Header http.Header
}

// Do sends r and decodes a 2xx JSON answer into out (when out is not nil
// and the answer has a body). A non-2xx answer is returned as a
// *protocol.Error.
func (c *Client) Do(ctx context.Context, r Request, out any) (Meta, error) {
	resp, err := c.send(ctx, r)
	if err != nil {
		return Meta{}, err
	}
	defer resp.Body.Close()
	meta := metaOf(resp)
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return meta, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return meta, nil
		}
		return meta, fmt.Errorf("%s %s: decode answer: %w", r.Method, r.Path, err)
	}
	return meta, nil
}

// Stream sends r and returns the answer's body unread, for streams (logs)
// and binary bodies (snapshots). The caller closes it. A non-2xx answer is
// returned as a *protocol.Error.
func (c *Client) Stream(ctx context.Context, r Request) (io.ReadCloser, Meta, error) {
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, Meta{}, err
	}
	return resp.Body, metaOf(resp), nil
}

// Resending changes of unknown outcome: a change (any method but GET and
// HEAD) carries an Idempotency-Key, the caller's or a new one; when its
// answer says the outcome is unknown (503 with outcome unknown, or a
// connection that broke after the request was sent), it is sent again
// with the same key, which the servers answer with the first attempt's
// outcome if it was applied (API.md, "Write outcomes").
const (
	maxResends  = 4
	resendPause = 500 * time.Millisecond
)

// send does the round trip, resending a change whose outcome is unknown,
// and turns non-2xx answers into errors.
func (c *Client) send(ctx context.Context, r Request) (*http.Response, error) {
	_, replayable := r.Body.(io.Reader)
	if r.Method == http.MethodGet || r.Method == http.MethodHead || replayable {
		return c.sendOnce(ctx, r)
	}
	r.Header = r.Header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	if r.Header.Get(HeaderIdempotencyKey) == "" {
		r.Header.Set(HeaderIdempotencyKey, newKey())
	}
	for attempt := 1; ; attempt++ {
		resp, err := c.sendOnce(ctx, r)
		if err == nil || attempt > maxResends || !unknownOutcome(err) || ctx.Err() != nil {
			return resp, err
		}
		if c.onResend != nil {
			c.onResend(fmt.Sprintf("%s %s: %v; sending it again with the same Idempotency-Key", r.Method, r.Path, err))
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * resendPause):
		}
	}
}

// HeaderIdempotencyKey is the request header that makes a change
// idempotent.
const HeaderIdempotencyKey = "Idempotency-Key"

// unknownOutcome reports whether a change that failed with err may have
// been applied.
func unknownOutcome(err error) bool {
	var e *protocol.Error
	if errors.As(err, &e) {
		return e.Code == protocol.CodeUnavailable && e.Outcome == protocol.OutcomeUnknown
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false // nothing was sent
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// newKey returns a random idempotency key.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sendOnce does one round trip and turns non-2xx answers into errors.
func (c *Client) sendOnce(ctx context.Context, r Request) (*http.Response, error) {
	// r.Path has its segments escaped already (seg).
	target := c.base.String() + r.Path
	if len(r.Query) > 0 {
		target += "?" + r.Query.Encode()
	}
	var body io.Reader
	contentType := ""
	switch b := r.Body.(type) {
	case nil:
	case io.Reader:
		body, contentType = b, "application/octet-stream"
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode body: %w", r.Method, r.Path, err)
		}
		body, contentType = bytes.NewReader(buf), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, target, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if contentType != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func metaOf(resp *http.Response) Meta {
	idx, _ := strconv.ParseUint(resp.Header.Get(HeaderIndex), 10, 64)
	return Meta{Index: idx}
}

// decodeError reads the {"error": {...}} body of a failed answer. An answer
// without one (a proxy's page, an old server) becomes an error of the code
// its status maps to, carrying the start of the body.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var env protocol.ErrorBody
	if json.Unmarshal(b, &env) == nil && env.Error != nil && env.Error.Message != "" {
		if env.Error.Code == "" {
			env.Error.Code = codeOf(resp.StatusCode)
		}
		return env.Error
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &protocol.Error{Code: codeOf(resp.StatusCode), Message: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, msg)}
}

// codeOf maps an HTTP status back to the API's error code.
func codeOf(status int) protocol.Code {
	for _, c := range []protocol.Code{
		protocol.CodeInvalidArgument, protocol.CodeUnauthenticated, protocol.CodePermissionDenied,
		protocol.CodeNotFound, protocol.CodeConflict, protocol.CodeTooLarge,
		protocol.CodeQuotaExceeded, protocol.CodeUnavailable,
	} {
		if c.HTTPStatus() == status {
			return c
		}
	}
	return protocol.CodeInternal
}

// call sends r and decodes the answer as a T; on error it returns T's zero
// value.
func call[T any](ctx context.Context, c *Client, r Request) (T, Meta, error) {
	var out T
	m, err := c.Do(ctx, r, &out)
	if err != nil {
		var zero T
		return zero, m, err
	}
	return out, m, nil
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }
