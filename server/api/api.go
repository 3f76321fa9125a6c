// Package api is Drover's HTTP admin API (API.md): routing, validation at
// the edge, forwarding to the leader, linearizable and blocking reads, and
// the audit record of every change.
package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drover-dev/drover/internal/bufpool"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/cluster"
	"github.com/drover-dev/drover/server/state"
)

// Headers of the API.
const (
	HeaderIndex = "X-Drover-Index"
	// HeaderOutcome says whether a change answered 503 was applied
	// (protocol.Error's Outcome).
	HeaderOutcome   = "X-Drover-Outcome"
	headerForwarded = "X-Drover-Forwarded"
	// HeaderIdempotencyKey names a change so that sending it again answers
	// the first one's outcome (state/idempotency.go); HeaderReplayed marks
	// such an answer.
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderReplayed       = "Idempotent-Replayed"
)

// MaxIdempotencyKey bounds an Idempotency-Key's length.
const MaxIdempotencyKey = 255

// MaxWait bounds the wait of a blocking query.
const MaxWait = 5 * time.Minute

// Config configures the API.
type Config struct {
	Cluster *cluster.Cluster
	Store   *state.Store
	Logger  hclog.Logger
	// Ready reports whether this server, as leader, has applied everything
	// committed before it became leader (a Barrier), so reads are current.
	Ready func() bool
	// Clock tells the time of tokens' expiry and audit records; the
	// cluster's (which stamps commands) when nil.
	Clock func() time.Time
	// Scheme to reach other servers for forwarding: "http" or "https".
	Scheme string
	// Transport for forwarded requests; http.DefaultTransport when nil.
	Transport http.RoundTripper
	// Logs streams replica output from agents.
	Logs LogStreamer
	// Live returns what the leader last heard from a node: when, and the
	// host's load (the gateway keeps both in memory).
	Live func(node string) (lastSeen time.Time, load *protocol.Metrics, ok bool)
	// Unformed says, while this server is in no cluster yet, why and what
	// to set; "" once it is a member.
	Unformed func() string
	// GatewayURL is the traffic gateways' base URL (scheme, -domain, port):
	// instances' endpoints are made from it. None when nil.
	GatewayURL *url.URL
	// Extra routes (the agent gateway, the console) mounted on the same mux.
	Mount func(mux *http.ServeMux)

	// ACL turns on tokens: every request but GET /v1/health needs one, and
	// its role and tenant decide what it may do (auth.go). Off, every
	// request acts as management (drover dev).
	ACL bool
	// ServerToken, when set, is the secret other servers present in
	// X-Drover-Server-Token to call /v1/internal/join (see auth.go).
	ServerToken string
	// RequireServerAuth makes /v1/internal/join accept only other servers
	// (or a management token) even with ACL off; it is on when the cluster
	// has a CA, whose server certificates identify servers.
	RequireServerAuth bool
	// AgentJoinToken is the join token set with -agent-join-token; when
	// empty, POST /v1/acl/bootstrap creates one.
	AgentJoinToken string
	// CAFingerprint, when the cluster has a CA, goes into the join token
	// the bootstrap answers, so that agents can check the servers.
	CAFingerprint string
	// Nodes closes the agent session of a revoked node (the gateway).
	Nodes NodeCloser
	// Pprof serves Go's profiles at /debug/pprof/ (management tokens).
	Pprof bool
	// Metrics serves GET /metrics; with ACL on it needs an operator or
	// management token, as Prometheus can send.
	Metrics http.Handler
	// TenantMetrics serves GET /v1/tenants/{tenant}/metrics: the tenant's
	// own series, to its tokens and to operators.
	TenantMetrics func(tenant string) http.Handler
}

// NodeCloser ends a node's agent session.
type NodeCloser interface {
	CloseNode(id string)
}

// API serves the admin API.
type API struct {
	cfg    Config
	c      *cluster.Cluster
	store  *state.Store
	logger hclog.Logger
	mux    *http.ServeMux
	audit  *auditQueue
	// streams counts the event streams being served (events.go).
	streams atomic.Int64
	// gateway is what endpoints puts around an instance's name: read
	// once from GatewayURL, not for each instance of a list.
	gateway gatewayParts
	// instances keeps the instances' JSON for lists (instancecache.go).
	instances *instanceCache
}

// New returns the API handler.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = cfg.Cluster.Now
	}
	if cfg.Scheme == "" {
		cfg.Scheme = "http"
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	a := &API{cfg: cfg, c: cfg.Cluster, store: cfg.Store, logger: cfg.Logger.Named("api"), mux: http.NewServeMux(),
		gateway: newGatewayParts(cfg.GatewayURL), instances: newInstanceCache()}
	a.audit = newAuditQueue(a)
	a.routes()
	if cfg.Mount != nil {
		cfg.Mount(a.mux)
	}
	return a
}

// ServeHTTP serves one request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mux.ServeHTTP(w, r)
}

// kind says how a route is served on a follower.
type kind int

const (
	read  kind = iota // linearizable unless ?stale=true: forwarded to the leader
	write             // always forwarded to the leader
	local             // answered by the server that receives it
)

// handlerFunc is an API handler: it returns an error to answer with, or
// writes its own answer and returns nil.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// bodyLimits are the routes whose bodies may be larger than
// protocol.MaxBodyBytes.
var bodyLimits = map[string]int64{
	"PUT /v1/operator/snapshot": MaxSnapshotBytes,
}

// handle serves pattern with h for the callers acc lets in (auth.go). A
// change that fails before its Raft command records its audit record is
// recorded here, batched with others.
func (a *API) handle(pattern string, k kind, acc access, h handlerFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		limit := int64(protocol.MaxBodyBytes)
		if l, ok := bodyLimits[pattern]; ok {
			limit = l
		}
		if r.ContentLength > limit {
			// Known before reading: too large, whatever it holds.
			a.writeError(w, r, protocol.Errorf(protocol.CodeTooLarge, "request body of %d bytes is over %d bytes", r.ContentLength, limit))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		// Servers are checked before forwarding: the leader sees the
		// forwarding server's certificate, not the caller's.
		if acc == servers {
			if _, err := a.authorizeServer(r); err != nil {
				a.refuse(w, r, identity{}, err)
				return
			}
		}
		if k != local && a.forward(w, r, k) {
			return
		}
		id, err := a.authorize(r, acc)
		if err != nil {
			a.refuse(w, r, id, err)
			return
		}
		st := &request{id: id}
		ctx := context.WithValue(r.Context(), requestKey{}, st)
		if key := r.Header.Get(HeaderIdempotencyKey); key != "" && isChange(r) {
			if err := checkIdempotencyKey(key); err != nil {
				a.writeError(w, r, err)
				return
			}
			// Scoped to the caller, so that one client's key never
			// answers another's request.
			ctx = cluster.WithIdempotencyKey(ctx, id.TokenID+"|"+r.Method+" "+r.URL.Path+"|"+key)
		}
		r = r.WithContext(ctx)
		if err := h(w, r); err != nil {
			if isChange(r) && !st.recorded {
				a.audit.add(a.auditRecord(r, actionOf(r), targetOf(r)), protocol.AsError(err).Code)
			}
			a.writeError(w, r, err)
		}
	})
}

// refuse answers a request that authorize refused, recording the attempt
// when it tried to change something.
func (a *API) refuse(w http.ResponseWriter, r *http.Request, id identity, err error) {
	if isChange(r) {
		r = r.WithContext(context.WithValue(r.Context(), requestKey{}, &request{id: id}))
		a.audit.add(a.auditRecord(r, actionOf(r), targetOf(r)), protocol.AsError(err).Code)
	}
	a.writeError(w, r, err)
}

// forward proxies r to the leader when this server must not answer it, and
// reports whether it did.
func (a *API) forward(w http.ResponseWriter, r *http.Request, k kind) bool {
	if k == read && r.URL.Query().Get("stale") == "true" {
		return false
	}
	if a.c.IsLeader() {
		if !a.cfg.Ready() {
			a.writeError(w, r, notApplied("leader is catching up; retry"))
			return true
		}
		return false
	}
	if r.Header.Get(headerForwarded) != "" {
		a.writeError(w, r, notApplied("no leader: the request was forwarded to a server that is not the leader; retry"))
		return true
	}
	addr := a.leaderHTTP()
	if addr == "" {
		msg := "no cluster leader known; retry"
		if a.cfg.Unformed != nil {
			if hint := a.cfg.Unformed(); hint != "" {
				msg = "no cluster leader known: " + hint
			}
		}
		a.writeError(w, r, notApplied("%s", msg))
		return true
	}
	target := &url.URL{Scheme: a.cfg.Scheme, Host: addr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(headerForwarded, a.c.ID())
			// The leader records the caller's address from this header,
			// trusting it only from a server (see sourceAddr): a caller's
			// own X-Forwarded-For is not passed on.
			pr.Out.Header.Set("X-Forwarded-For", remoteHost(pr.In))
			if a.cfg.ServerToken != "" {
				pr.Out.Header.Set(HeaderServerToken, a.cfg.ServerToken)
			}
		},
		Transport:     a.cfg.Transport,
		BufferPool:    bufpool.Pool{},
		FlushInterval: -1, // stream log follows and blocking answers as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var op *net.OpError
			switch {
			case k == read:
				a.writeError(w, r, protocol.Errorf(protocol.CodeUnavailable, "forward to leader at %s: %v", addr, err))
				return
			case errors.As(err, &op) && op.Op == "dial":
				a.writeError(w, r, notApplied("forward to leader at %s: %v", addr, err))
				return
			}
			// The leader may have received the change: it may be applied.
			a.writeError(w, r, &protocol.Error{Code: protocol.CodeUnavailable, Outcome: protocol.OutcomeUnknown,
				Message: fmt.Sprintf("outcome unknown: forward to leader at %s: %v; read the state before retrying, or retry with the same Idempotency-Key", addr, err)})
		},
	}
	proxy.ServeHTTP(w, r)
	return true
}

func (a *API) leaderHTTP() string {
	id, _ := a.c.Leader()
	if id == "" {
		return ""
	}
	if m := a.store.Snapshot().Server(id); m != nil {
		return m.HTTPAddr
	}
	return ""
}

// consistentRead makes a read on the leader linearizable: it confirms
// leadership with a quorum. Stale reads skip it.
func (a *API) consistentRead(r *http.Request) error {
	if r.URL.Query().Get("stale") == "true" {
		return nil
	}
	if err := a.c.VerifyLeader(); err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "leadership lost; retry")
	}
	return nil
}

// read serves a read: it blocks while ?index=N&wait=D asks to, checks
// consistency, sets X-Drover-Index and returns the state to read.
func (a *API) read(w http.ResponseWriter, r *http.Request, tables ...string) (*state.Snapshot, error) {
	if err := Block(r, a.store, 30*time.Second, MaxWait, tables...); err != nil {
		return nil, err
	}
	if err := a.consistentRead(r); err != nil {
		return nil, err
	}
	snap := a.store.Snapshot()
	idx := snap.Index(tables...)
	if idx == 0 {
		idx = snap.Index()
	}
	w.Header().Set(HeaderIndex, strconv.FormatUint(idx, 10))
	return snap, nil
}

// Block waits as a blocking query's ?index=N&wait=D asks: until one of
// tables passes N, or the wait (def when absent, at most max) ends.
func Block(r *http.Request, store *state.Store, def, max time.Duration, tables ...string) error {
	q := r.URL.Query()
	s := q.Get("index")
	if s == "" {
		return nil
	}
	after, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return protocol.FieldError("index", "must be a non-negative integer")
	}
	wait := def
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return protocol.FieldError("wait", "must be a duration like 30s")
		}
		wait = min(d, max)
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	store.Wait(ctx, after, tables...)
	cancel()
	return nil
}

// propose proposes a command with the audit record of the request and sets
// X-Drover-Index.
func (a *API) propose(w http.ResponseWriter, r *http.Request, typ state.CommandType, target string, body any) (uint64, error) {
	return a.proposeAudited(w, r, a.auditRecord(r, string(typ), target), typ, body)
}

// proposeAudited is propose with an audit record that names the action
// more closely than the command type does ("instance.stop") or its
// arguments (Detail).
func (a *API) proposeAudited(w http.ResponseWriter, r *http.Request, rec *protocol.AuditRecord, typ state.CommandType, body any) (uint64, error) {
	idx, _, err := a.proposeValue(w, r, rec, typ, body)
	return idx, err
}

// proposeValue is proposeAudited that also returns the object the command
// wrote, as the FSM applied it: answers are built from it, not from a
// second read of the state, which a later command may have changed.
func (a *API) proposeValue(w http.ResponseWriter, r *http.Request, rec *protocol.AuditRecord, typ state.CommandType, body any) (uint64, any, error) {
	if rec.Tenant == "" && typ == state.CmdTenantUpsert {
		rec.Tenant = rec.Target // a tenant's creation is in its own trail
	}
	idx, v, err := a.c.ProposeValue(r.Context(), typ, body, rec)
	switch {
	case errors.Is(err, cluster.ErrNotLeader):
		return 0, nil, notApplied("leadership changed before the change was proposed: nothing was applied; retry")
	case errors.Is(err, cluster.ErrOutcomeUnknown):
		markRecorded(r) // it may be in the log with its record
		return 0, nil, &protocol.Error{Code: protocol.CodeUnavailable, Outcome: protocol.OutcomeUnknown,
			Message: "outcome unknown: the server lost its leadership while the change was being committed, so it may or may not have been applied; read the state before retrying, or retry with the same Idempotency-Key"}
	}
	if rp, ok := v.(state.Replayed); ok {
		// A repeated Idempotency-Key: the first request's outcome.
		idx, v = rp.Index, rp.Value
		w.Header().Set(HeaderReplayed, "true")
	}
	if idx != 0 {
		markRecorded(r)
		w.Header().Set(HeaderIndex, strconv.FormatUint(idx, 10))
	}
	return idx, v, err
}

// notApplied is the answer to a change that surely changed nothing and may
// be sent again.
func notApplied(format string, args ...any) *protocol.Error {
	e := protocol.Errorf(protocol.CodeUnavailable, format, args...)
	e.Outcome = protocol.OutcomeNotApplied
	return e
}

// change proposes a command with the request's audit record and returns
// the object of type T it wrote, as the FSM applied it.
func change[T any](a *API, w http.ResponseWriter, r *http.Request, rec *protocol.AuditRecord, typ state.CommandType, body any) (*T, error) {
	_, v, err := a.proposeValue(w, r, rec, typ, body)
	if err != nil {
		return nil, err
	}
	if t, ok := v.(*T); ok {
		return t, nil
	}
	return nil, protocol.Errorf(protocol.CodeInternal, "%s was applied without the %T it writes", typ, new(T))
}

func (a *API) auditRecord(r *http.Request, action, target string) *protocol.AuditRecord {
	id := identityFrom(r)
	return &protocol.AuditRecord{
		Time: a.cfg.Clock().UTC(), TokenID: id.TokenID, Role: id.Role, Tenant: tenantOf(r, id),
		Action: action, Target: target, Source: a.sourceAddr(r),
	}
}

// tenantOf is the tenant an audit record belongs to: a tenant token's own
// (so that its attempts on names outside its tenant show in its own log,
// never in the other tenant's), else the tenant named in the path.
func tenantOf(r *http.Request, id identity) string {
	if id.Tenant != "" {
		return id.Tenant
	}
	if t := r.PathValue("tenant"); t != "" {
		return t
	}
	return id.Tenant
}

// sourceAddr is the address a request came from: the caller's, as the
// server that forwarded it says, when another server forwarded it.
func (a *API) sourceAddr(r *http.Request) string {
	if r.Header.Get(headerForwarded) != "" && (a.fromServer(r) || !a.cfg.ACL && !a.cfg.RequireServerAuth) {
		if xf := r.Header.Get("X-Forwarded-For"); xf != "" {
			parts := strings.Split(xf, ",")
			return protocol.Truncate(strings.TrimSpace(parts[len(parts)-1]), maxAuditField)
		}
	}
	return remoteHost(r)
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// decode reads a JSON body into v. Unknown fields are refused so that a
// typo is an error and not silently ignored.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return protocol.Errorf(protocol.CodeTooLarge, "request body over %d bytes", protocol.MaxBodyBytes)
		}
		if errors.Is(err, io.EOF) {
			return protocol.Errorf(protocol.CodeInvalidArgument, "request body is empty; JSON expected")
		}
		return decodeError(err)
	}
	if dec.More() {
		return protocol.Errorf(protocol.CodeInvalidArgument, "request body holds more than one JSON value")
	}
	return nil
}

// decodeError turns a JSON decoding error into an invalid_argument naming
// the field where possible.
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := te.Type.String()
		if te.Type == reflect.TypeFor[protocol.Duration]() {
			want = `a duration like "5s"`
		}
		return protocol.FieldError(te.Field, "must be %s, got %s", want, te.Value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return protocol.FieldError(strings.Trim(f, `"`), "unknown field")
	}
	if strings.Contains(msg, "json: cannot unmarshal") || strings.Contains(msg, "invalid duration") || strings.Contains(msg, "duration must be") {
		return protocol.Errorf(protocol.CodeInvalidArgument, "invalid request body: %s", msg)
	}
	return protocol.Errorf(protocol.CodeInvalidArgument, "invalid JSON: %s", msg)
}

// writeJSON answers v as JSON: compact, as Nomad and Kubernetes answer
// (pipe it to jq to read it); indenting doubled the size and the time of
// large lists.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// listWriters buffer the answers of writeJSONList: written to the
// connection in large chunks, not one per element.
var listWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// writeJSONList answers items as a JSON array, each element as appendJSON
// appends it, byte for byte as writeJSON answers the slice when appendJSON
// writes what encoding/json does. Each element is made and written before
// the next: a list of thousands is never held whole, neither as answers
// nor as JSON.
func writeJSONList[T any](w http.ResponseWriter, status int, items []T, appendJSON func([]byte, T) ([]byte, error)) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	bw := listWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		listWriters.Put(bw)
	}()
	var buf []byte
	bw.WriteByte('[')
	for i, it := range items {
		var err error
		if buf, err = appendJSON(buf[:0], it); err != nil {
			// The status is sent: break the connection, so that the
			// client cannot take the list cut short for the whole.
			panic(http.ErrAbortHandler)
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		if _, err := bw.Write(buf); err != nil {
			return // the client is gone
		}
	}
	bw.WriteString("]\n")
	bw.Flush()
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := protocol.AsError(err)
	if e.Code == protocol.CodeInternal {
		a.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	if e.Outcome != "" {
		w.Header().Set(HeaderOutcome, e.Outcome)
	}
	writeJSON(w, e.Code.HTTPStatus(), protocol.ErrorBody{Error: e})
}

func (a *API) notFound(w http.ResponseWriter, r *http.Request) error {
	return protocol.Errorf(protocol.CodeNotFound, "no route for %s %s", r.Method, r.URL.Path)
}

// identity is who makes a request. ACLs fill it from the token; with ACLs
// off every request acts as management.
type identity struct {
	TokenID string
	Role    string
	Tenant  string
}

// request is what the API knows of a request being served: who makes it,
// and whether its audit record is already in a Raft command.
type request struct {
	id       identity
	recorded bool
}

type requestKey struct{}

func identityFrom(r *http.Request) identity {
	if st, ok := r.Context().Value(requestKey{}).(*request); ok {
		return st.id
	}
	return identity{Role: protocol.RoleManagement}
}

// markRecorded notes that the request's audit record went into Raft.
func markRecorded(r *http.Request) {
	if st, ok := r.Context().Value(requestKey{}).(*request); ok {
		st.recorded = true
	}
}

// checkIdempotencyKey checks an Idempotency-Key header.
func checkIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKey {
		return protocol.FieldError(HeaderIdempotencyKey, "at most %d characters", MaxIdempotencyKey)
	}
	for _, c := range key {
		if c < 0x21 || c > 0x7e {
			return protocol.FieldError(HeaderIdempotencyKey, "printable ASCII without spaces only")
		}
	}
	return nil
}
