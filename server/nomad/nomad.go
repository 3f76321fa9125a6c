// Package nomad serves a subset of Nomad's HTTP API on Drover's state, so
// that the github.com/hashicorp/nomad/api client and the tools built on it
// drive Drover (docs/NOMAD.md). A namespace is a tenant and a service job
// of one task is an instance. Reads come from this server's state; writes
// are sent through the admin API's own handler, which checks, forwards to
// the leader, proposes and audits them as it does its own requests.
package nomad

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/api"
	"github.com/drover-dev/drover/server/cluster"
	"github.com/drover-dev/drover/server/state"
)

// DefaultNamespace is Nomad's namespace of jobs that name none.
const DefaultNamespace = "default"

// maxWait bounds the wait of a blocking query, as Nomad's 10 minutes do.
const maxWait = 10 * time.Minute

// Config configures the Nomad listener's handler.
type Config struct {
	// API is Drover's admin API handler: writes go through it.
	API http.Handler
	// Caller authenticates a request's token as the admin API does
	// (api.API.Caller).
	Caller  func(r *http.Request) (role, tenant string, err error)
	Store   *state.Store
	Cluster *cluster.Cluster
	// DefaultTenant is the tenant of Nomad's "default" namespace;
	// "default" when empty.
	DefaultTenant string
	// Region is what the answers name as Nomad's region and datacenter of
	// servers; "global" when empty.
	Region string
	Logger hclog.Logger
}

// Handler serves the Nomad API.
type Handler struct {
	cfg    Config
	mux    *http.ServeMux
	logger hclog.Logger
}

// New returns the Nomad API handler.
func New(cfg Config) *Handler {
	if cfg.DefaultTenant == "" {
		cfg.DefaultTenant = DefaultNamespace
	}
	if cfg.Region == "" {
		cfg.Region = "global"
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), logger: cfg.Logger.Named("nomad")}
	h.routes()
	return h
}

// ServeHTTP serves one request. Nomad clients send their token in
// X-Nomad-Token; it becomes the bearer token the admin API reads.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if tok := r.Header.Get("X-Nomad-Token"); tok != "" && r.Header.Get("Authorization") == "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	h.mux.ServeHTTP(w, r)
}

// caller is who makes a request.
type caller struct {
	role, tenant string
}

// operator reports whether the caller sees every tenant and the nodes.
func (c caller) operator() bool {
	return c.role == protocol.RoleManagement || c.role == protocol.RoleOperator
}

// handlerFunc serves a request for an authenticated caller; an error is
// answered as Nomad answers errors: the status and a line of text.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller) error

func (h *Handler) handle(pattern string, fn handlerFunc) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		role, tenant, err := h.cfg.Caller(r)
		if err == nil {
			err = fn(w, r, caller{role: role, tenant: tenant})
		}
		if err != nil {
			e := protocol.AsError(err)
			if e.Code == protocol.CodeInternal {
				h.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			}
			msg := e.Message
			if e.Field != "" && e.Code == protocol.CodeInvalidArgument {
				msg = e.Field + ": " + msg
			}
			http.Error(w, msg, e.Code.HTTPStatus())
		}
	})
}

// tenantOf is the tenant a namespace names.
func (h *Handler) tenantOf(ns string) string {
	if ns == "" || ns == DefaultNamespace {
		return h.cfg.DefaultTenant
	}
	return ns
}

// namespaceOf is the namespace a tenant is shown as.
func (h *Handler) namespaceOf(tenant string) string {
	if tenant == h.cfg.DefaultTenant {
		return DefaultNamespace
	}
	return tenant
}

// requestTenant is the tenant of ?namespace=, or "" for "*" (every
// tenant the caller sees).
func (h *Handler) requestTenant(r *http.Request) string {
	ns := r.URL.Query().Get("namespace")
	if ns == "*" {
		return ""
	}
	return h.tenantOf(ns)
}

// sees reports whether the caller may read the tenant's objects.
func (c caller) sees(tenant string) bool { return c.tenant == "" || c.tenant == tenant }

// read blocks while ?index=N&wait=D asks to, sets Nomad's query headers and
// returns the state to answer from.
func (h *Handler) read(w http.ResponseWriter, r *http.Request, tables ...string) (*state.Snapshot, error) {
	if err := api.Block(r, h.cfg.Store, 5*time.Minute, maxWait, tables...); err != nil {
		return nil, err
	}
	snap := h.cfg.Store.Snapshot()
	idx := snap.Index(tables...)
	if idx == 0 {
		idx = snap.Index()
	}
	w.Header().Set("X-Nomad-Index", strconv.FormatUint(idx, 10))
	h.leaderHeaders(w)
	return snap, nil
}

// leaderHeaders sets X-Nomad-KnownLeader and X-Nomad-LastContact (in
// milliseconds; 0 on the leader).
func (h *Handler) leaderHeaders(w http.ResponseWriter) {
	id, _ := h.cfg.Cluster.Leader()
	w.Header().Set("X-Nomad-KnownLeader", strconv.FormatBool(id != ""))
	var last int64
	if !h.cfg.Cluster.IsLeader() {
		if t := h.cfg.Cluster.Raft().LastContact(); !t.IsZero() {
			last = time.Since(t).Milliseconds()
		}
	}
	w.Header().Set("X-Nomad-LastContact", strconv.FormatInt(last, 10))
}

// answer writes v as JSON.
func answer(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body into v.
func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, protocol.MaxBodyBytes)).Decode(v); err != nil {
		return protocol.Errorf(protocol.CodeInvalidArgument, "invalid request body: %v", err)
	}
	return nil
}

// call sends a request to Drover's admin API with the caller's own
// headers (its token, its address) and returns the Raft index of the
// change and its JSON answer, or the API's error.
func (h *Handler) call(r *http.Request, method, path string, body any) (uint64, []byte, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	in, err := http.NewRequestWithContext(r.Context(), method, path, rd)
	if err != nil {
		return 0, nil, err
	}
	in.RemoteAddr = r.RemoteAddr
	in.Host = r.Host
	if a := r.Header.Get("Authorization"); a != "" {
		in.Header.Set("Authorization", a)
	}
	in.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.cfg.API.ServeHTTP(rec, in)
	if rec.Code >= 300 {
		var eb protocol.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == nil {
			return 0, nil, protocol.Errorf(protocol.CodeInternal, "%s %s answered %d: %s", method, path, rec.Code, rec.Body.String())
		}
		return 0, nil, eb.Error
	}
	idx, _ := strconv.ParseUint(rec.Header().Get("X-Drover-Index"), 10, 64)
	return idx, rec.Body.Bytes(), nil
}

// instancePath is the admin API's path of an instance.
func instancePath(tenant, name string) string {
	return "/v1/tenants/" + url.PathEscape(tenant) + "/instances/" + url.PathEscape(name)
}

// isCode reports whether err is a Drover error of code.
func isCode(err error, code protocol.Code) bool {
	var e *protocol.Error
	return errors.As(err, &e) && e.Code == code
}

// unsupported is the 400 of a job feature Drover does not run.
func unsupported(format string, args ...any) error {
	return protocol.Errorf(protocol.CodeInvalidArgument, "unsupported by Drover: %s", fmt.Sprintf(format, args...))
}
