// Package flags serves the replicas of an agent their instances' feature
// flags, as the servers resolved them into the node's assignment: OFREP
// (the OpenFeature Remote Evaluation Protocol) over HTTP, where each
// replica's own bearer token reads its own instance's flags only, and a
// flagd flag file per replica, replaced atomically when its values change.
// It keeps what it was last given, so replicas read their flags while no
// server is reachable.
package flags

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/drover-dev/drover/internal/secret"
	"github.com/drover-dev/drover/protocol"
)

// Replica is what the server serves of one replica.
type Replica struct {
	ID       string
	Tenant   string
	Instance string
	// Token is the replica's secret (DROVER_FLAGS_TOKEN).
	Token string
	// Metadata goes with every evaluation: tenant, environment, plan,
	// instance, version.
	Metadata map[string]string
	Flags    []protocol.ResolvedFlag
	// File is where the replica's flagd flag file is kept.
	File string
}

// entry is a replica as served: its flags by key, its bulk answer and the
// answer's ETag, made once per change.
type entry struct {
	Replica
	byKey map[string]protocol.ResolvedFlag
	bulk  []byte
	etag  string
	file  []byte // the flag file's content as last written
}

// Server serves the flags of the agent's replicas. It is safe for
// concurrent use.
type Server struct {
	mu      sync.RWMutex
	byToken map[string]*entry // by the hash of the replica's token
	byID    map[string]*entry
	// writeMu serializes the writes of flag files.
	writeMu sync.Mutex
}

// New returns a server of no replicas.
func New() *Server {
	return &Server{byToken: map[string]*entry{}, byID: map[string]*entry{}}
}

// PathPrefix is the path under which an instance's OFREP endpoints are
// served: DROVER_FLAGS_URL is the server's address followed by it.
func PathPrefix(tenant, instance string) string { return "/instances/" + tenant + "/" + instance }

// Set serves a replica's flags from now on, replacing what it had, and
// writes its flag file when its content changed.
func (s *Server) Set(r Replica) error {
	e := &entry{Replica: r, byKey: make(map[string]protocol.ResolvedFlag, len(r.Flags))}
	evals := make([]evaluation, 0, len(r.Flags))
	for _, f := range r.Flags {
		e.byKey[f.Key] = f
		evals = append(evals, e.evaluate(f))
	}
	var err error
	if e.bulk, err = json.Marshal(bulkAnswer{Flags: evals, Metadata: r.Metadata}); err != nil {
		return err
	}
	sum := sha256.Sum256(e.bulk)
	e.etag = `"` + hex.EncodeToString(sum[:16]) + `"`

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	old := s.byID[r.ID]
	s.mu.RUnlock()
	if old != nil {
		e.file = old.file
	}
	if r.File != "" {
		content, err := flagdFile(r.Flags, r.Metadata)
		if err != nil {
			return err
		}
		if !bytes.Equal(content, e.file) {
			if err := writeAtomic(r.File, content); err != nil {
				return fmt.Errorf("write flag file of replica %s: %w", r.ID, err)
			}
			e.file = content
		}
	}
	s.mu.Lock()
	if old != nil {
		delete(s.byToken, secret.Hash(old.Token))
	}
	s.byToken[secret.Hash(r.Token)] = e
	s.byID[r.ID] = e
	s.mu.Unlock()
	return nil
}

// Remove stops serving a replica.
func (s *Server) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.byID[id]; e != nil {
		delete(s.byToken, secret.Hash(e.Token))
		delete(s.byID, id)
	}
}

// evaluation is an OFREP evaluation's answer, a success or a failure.
type evaluation struct {
	Key          string            `json:"key"`
	Value        json.RawMessage   `json:"value,omitempty"`
	Variant      string            `json:"variant,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	ErrorCode    string            `json:"errorCode,omitempty"`
	ErrorDetails string            `json:"errorDetails,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

type bulkAnswer struct {
	Flags    []evaluation      `json:"flags"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// generalError is OFREP's answer without a flag: errors of the request.
type generalError struct {
	ErrorCode    string `json:"errorCode,omitempty"`
	ErrorDetails string `json:"errorDetails"`
}

// OpenFeature reasons: a value no override chose is the instance's static
// default; an override targets the environment, tenant or instance.
const (
	reasonStatic   = "STATIC"
	reasonTargeted = "TARGETING_MATCH"
)

// evaluate answers one flag: its value and variant, why, and the
// replica's metadata with the source of the value.
func (e *entry) evaluate(f protocol.ResolvedFlag) evaluation {
	md := make(map[string]string, len(e.Metadata)+1)
	for k, v := range e.Metadata {
		md[k] = v
	}
	md["source"] = f.Source
	reason := reasonTargeted
	if f.Source == protocol.FlagSourceDefault {
		reason = reasonStatic
	}
	return evaluation{Key: f.Key, Value: f.Value, Variant: f.Variant, Reason: reason, Metadata: md}
}

// maxRequestBytes bounds an evaluation request (its context).
const maxRequestBytes = 64 << 10

// ServeHTTP serves OFREP's single and bulk evaluations, at the root and
// under PathPrefix of the replica's instance.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	var tenant, instance string
	if rest, ok := strings.CutPrefix(path, "/instances/"); ok {
		parts := strings.SplitN(rest, "/", 3)
		if len(parts) < 3 {
			writeJSON(w, http.StatusNotFound, generalError{ErrorDetails: "no such path; OFREP is served at /ofrep/v1/evaluate/flags"})
			return
		}
		tenant, instance, path = parts[0], parts[1], "/"+parts[2]
	}
	key, single := strings.CutPrefix(path, "/ofrep/v1/evaluate/flags/")
	if !single && path != "/ofrep/v1/evaluate/flags" {
		writeJSON(w, http.StatusNotFound, generalError{ErrorDetails: "no such path; OFREP is served at /ofrep/v1/evaluate/flags"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, generalError{ErrorDetails: "OFREP evaluations are POST requests"})
		return
	}
	e, status, msg := s.authorize(r, tenant, instance)
	if e == nil {
		writeJSON(w, status, generalError{ErrorDetails: msg})
		return
	}
	if err := readContext(r); err != nil {
		writeJSON(w, http.StatusBadRequest, evaluation{Key: key, ErrorCode: "PARSE_ERROR", ErrorDetails: err.Error()})
		return
	}
	if !single {
		w.Header().Set("ETag", e.etag)
		if etagMatch(r.Header.Get("If-None-Match"), e.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(e.bulk)
		return
	}
	f, ok := e.byKey[key]
	if !ok {
		writeJSON(w, http.StatusNotFound, evaluation{Key: key, ErrorCode: "FLAG_NOT_FOUND",
			ErrorDetails: fmt.Sprintf("flag %q is not defined for %s", key, protocol.InstanceID(e.Tenant, e.Instance))})
		return
	}
	writeJSON(w, http.StatusOK, e.evaluate(f))
}

// authorize finds the replica whose token the request bears; it must be
// of the instance the path names, if it names one.
func (s *Server) authorize(r *http.Request, tenant, instance string) (*entry, int, string) {
	tok := secret.FromBearer(r.Header.Get("Authorization"))
	if tok == "" {
		return nil, http.StatusUnauthorized, "a token is required: send Authorization: Bearer $DROVER_FLAGS_TOKEN"
	}
	s.mu.RLock()
	e := s.byToken[secret.Hash(tok)]
	s.mu.RUnlock()
	if e == nil {
		return nil, http.StatusUnauthorized, "unknown token: a replica's token is valid while the replica runs on this node"
	}
	if instance != "" && (tenant != e.Tenant || instance != e.Instance) {
		return nil, http.StatusForbidden, "this token reads the flags of its own instance only"
	}
	return e, 0, ""
}

// readContext reads an evaluation request: empty, or a JSON object (its
// context is not used: every flag of an instance has one value).
func readContext(r *http.Request) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil {
		return err
	}
	if len(b) > maxRequestBytes {
		return fmt.Errorf("request over %d bytes", maxRequestBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var req struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return fmt.Errorf("request is not an OFREP evaluation request: %v", err)
	}
	return nil
}

// etagMatch reports whether an If-None-Match header names etag.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// flagdFile is a flag file in flagd's schema: each flag enabled, with the
// variant the servers resolved as its only variant and its default.
func flagdFile(fs []protocol.ResolvedFlag, md map[string]string) ([]byte, error) {
	type flagdFlag struct {
		State          string                     `json:"state"`
		Variants       map[string]json.RawMessage `json:"variants"`
		DefaultVariant string                     `json:"defaultVariant"`
		Metadata       map[string]string          `json:"metadata,omitempty"`
	}
	out := struct {
		Flags    map[string]flagdFlag `json:"flags"`
		Metadata map[string]string    `json:"metadata,omitempty"`
	}{Flags: make(map[string]flagdFlag, len(fs)), Metadata: md}
	for _, f := range fs {
		out.Flags[f.Key] = flagdFlag{State: "ENABLED", Variants: map[string]json.RawMessage{f.Variant: f.Value},
			DefaultVariant: f.Variant, Metadata: map[string]string{"source": f.Source}}
	}
	return json.MarshalIndent(out, "", "  ")
}

// writeAtomic replaces the file at path with content: written to a
// temporary file in the same folder, then renamed over it, so that a
// reader sees the old file or the new one, never a part.
func writeAtomic(path string, content []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // gone after the rename; removes it on failure
	if _, err := f.Write(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
