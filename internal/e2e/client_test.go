package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// defaultRequestTimeout bounds a request of the Client; blocking queries
// and slow calls use WithTimeout.
const defaultRequestTimeout = 15 * time.Second

// Client calls one server's HTTP API the way a user's script would.
type Client struct {
	t    testing.TB
	base string // http://host:port
	hc   *http.Client
	// retry is how long Try repeats a request that got no answer or 503.
	retry time.Duration
	// The ACL issue adds the token here (Authorization: Bearer).
}

// retryBudget is how long WithRetry clients repeat a request: elections
// on a loaded machine take a second or two.
const retryBudget = 10 * time.Second

// WithTimeout returns a copy of c whose requests give up after d.
func (c *Client) WithTimeout(d time.Duration) *Client {
	cc := *c
	hc := *c.hc
	hc.Timeout = d
	cc.hc = &hc
	return &cc
}

// WithRetry returns a copy of c that repeats a request for up to budget
// while it gets a transport error or 503 unavailable, as API.md tells
// clients to, and returns the first other answer. Scenarios that are not
// about availability use it so that an unrelated election on a loaded
// machine does not fail them; any other answer is still checked strictly.
// The body must not be an io.Reader (it is sent again).
func (c *Client) WithRetry(budget time.Duration) *Client {
	cc := *c
	cc.retry = budget
	return &cc
}

// Response is an answer of the API.
type Response struct {
	Method, URL string
	Status      int
	Header      http.Header
	Body        []byte
}

// OK reports a 2xx status.
func (r *Response) OK() bool { return r.Status/100 == 2 }

// Index is the X-Drover-Index header, 0 when absent or malformed.
func (r *Response) Index() uint64 {
	n, _ := strconv.ParseUint(r.Header.Get("X-Drover-Index"), 10, 64)
	return n
}

// Decode unmarshals the body into v.
func (r *Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w (body %q)", r.Method, r.URL, err, shorten(r.Body))
	}
	return nil
}

// ErrorCode is the error.code of an error answer (API.md), or "".
func (r *Response) ErrorCode() string {
	var e apiError
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

func (r *Response) String() string {
	return fmt.Sprintf("%s %s: %d %s", r.Method, r.URL, r.Status, shorten(r.Body))
}

// shorten puts a body on one line, cut after 400 bytes, for messages.
func shorten(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

// Try makes a request and returns the answer or the transport error; it
// never fails the test, so it is the one to use in polls and goroutines.
// body is nil, a []byte or io.Reader sent as it is, a string sent as JSON
// text, or any other value encoded as JSON.
func (c *Client) Try(method, path string, body any) (*Response, error) {
	if c.retry == 0 {
		return c.once(method, path, body)
	}
	if _, ok := body.(io.Reader); ok {
		return nil, fmt.Errorf("%s %s: an io.Reader body cannot be retried", method, path)
	}
	var r *Response
	var err error
	waitUntil(c.retry, func() (bool, string) {
		r, err = c.once(method, path, body)
		return err == nil && r.Status != http.StatusServiceUnavailable, ""
	})
	return r, err
}

func (c *Client) once(method, path string, body any) (*Response, error) {
	rd, ctype, err := encodeBody(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, req.URL, err)
	}
	return &Response{Method: method, URL: req.URL.String(), Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

func encodeBody(body any) (io.Reader, string, error) {
	switch b := body.(type) {
	case nil:
		return nil, "", nil
	case []byte:
		return bytes.NewReader(b), "application/octet-stream", nil
	case io.Reader:
		return b, "application/octet-stream", nil
	case string:
		return strings.NewReader(b), "application/json", nil
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, "", fmt.Errorf("encode request body: %w", err)
		}
		return bytes.NewReader(j), "application/json", nil
	}
}

// Do makes a request and returns the status, headers and body; a transport
// error fails the test. Test goroutine only.
func (c *Client) Do(method, path string, body any) (int, http.Header, []byte) {
	c.t.Helper()
	r, err := c.Try(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s%s: %v", method, c.base, path, err)
	}
	return r.Status, r.Header, r.Body
}

// JSON makes a request that must succeed (2xx) and decodes the answer into
// out when out is not nil. Test goroutine only.
func (c *Client) JSON(method, path string, body, out any) *Response {
	c.t.Helper()
	r, err := c.Try(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s%s: %v", method, c.base, path, err)
	}
	if !r.OK() {
		c.t.Fatalf("%s: want a 2xx answer", r)
	}
	if out != nil {
		if err := r.Decode(out); err != nil {
			c.t.Fatal(err)
		}
	}
	return r
}

// The documents of API.md, as a user's program would declare them: only
// the fields the tests read, so that the tests check the contract's names
// and not the server's Go types.

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

type apiStatus struct {
	Leader     string      `json:"leader"`
	Members    []apiMember `json:"members"`
	Index      uint64      `json:"index"`
	LogVersion int         `json:"log_version"`
}

type apiMember struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
	State    string `json:"state"`
}

type apiTenant struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

type apiInstance struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Environment string `json:"environment"`
	Replicas    int    `json:"replicas"`
	Version     uint64 `json:"version"`
	Spec        struct {
		Version string            `json:"version"`
		Command []string          `json:"command"`
		Env     map[string]string `json:"env"`
		Secrets map[string]string `json:"secrets"`
	} `json:"spec"`
	Status *struct {
		State string `json:"state"`
	} `json:"status"`
}
