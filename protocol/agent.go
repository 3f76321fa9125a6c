package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode"

	"github.com/coder/websocket"
)

// AgentProtocolVersion is the version of the agent<->server protocol. A
// server accepts agents of the same major version.
const AgentProtocolVersion = 1

// MaxFrameBytes bounds one WebSocket message in either direction.
const MaxFrameBytes = 4 << 20

// Limits of the agent protocol.
const (
	MaxReportsPerStatus = 10000
	MaxAssignReplicas   = 10000
	MaxMessageBytes     = 4096
)

// MessageType names what an Envelope carries.
type MessageType string

// Message types of the agent protocol (docs/DESIGN.md, "Protocol sketch").
const (
	MsgHello   MessageType = "hello"
	MsgWelcome MessageType = "welcome"
	MsgAssign  MessageType = "assign"
	MsgStatus  MessageType = "status"
	MsgAck     MessageType = "ack"
	MsgError   MessageType = "error"
	MsgLogs    MessageType = "logs"     // server→agent: start streaming a replica's log
	MsgLogData MessageType = "log_data" // agent→server: a chunk of a log stream
	// MsgHeartbeat (server→agent) gives a new heartbeat interval: it grows
	// with the fleet, and agents of a session begun in a smaller one must
	// slow down too.
	MsgHeartbeat MessageType = "heartbeat"
)

// known reports whether t is a message type of this protocol version.
func (t MessageType) known() bool {
	switch t {
	case MsgHello, MsgWelcome, MsgAssign, MsgStatus, MsgAck, MsgError, MsgLogs, MsgLogData, MsgHeartbeat:
		return true
	}
	return false
}

// CodeNotLeader is the code of the error message a server that does not
// lead answers a hello with; its body is a Redirect. The other codes of
// the agent channel are the API's (unauthenticated, invalid_argument, ...).
const CodeNotLeader Code = "not_leader"

// ChannelError is the body of an error message: the sender closes the
// connection after it.
type ChannelError struct {
	Code    Code            `json:"code"`
	Message string          `json:"message"`
	Body    json.RawMessage `json:"body,omitempty"`
}

// Error returns the message with its code.
func (e *ChannelError) Error() string { return string(e.Code) + ": " + e.Message }

// Health of a replica as its agent reports it (ReplicaReport.Health).
const (
	HealthUnknown = "unknown"   // running, its check has not passed yet
	HealthPassing = "healthy"   // its check passes (or it has none)
	HealthFailing = "unhealthy" // its check fails
)

// Envelope is every message on the agent WebSocket.
type Envelope struct {
	Type MessageType     `json:"type"`
	ID   string          `json:"id,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`
}

// Hello is the agent's first message.
type Hello struct {
	ProtocolVersion int               `json:"protocol_version"`
	NodeID          string            `json:"node_id,omitempty"`
	NodeSecret      string            `json:"node_secret,omitempty"`
	JoinToken       string            `json:"join_token,omitempty"`
	Name            string            `json:"name"`
	Version         string            `json:"version"`
	Region          string            `json:"region,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Resources       NodeResources     `json:"resources"`
	Facts           NodeFacts         `json:"facts"`
	PortRange       PortRange         `json:"port_range"`
	// Address is where the node's replicas are reached; empty: the address
	// the connection comes from.
	Address  string          `json:"address,omitempty"`
	Replicas []ReplicaReport `json:"replicas,omitempty"`
	// AssignChanges asks for assignments as changes to the last one of
	// the session rather than whole sets (Assign). A server that does not
	// know the field sends whole sets, which such an agent takes too.
	AssignChanges bool `json:"assign_changes,omitempty"`
}

// Welcome answers a hello.
type Welcome struct {
	NodeID string `json:"node_id"`
	// NodeSecret is sent once, when the node registers with the join token.
	NodeSecret        string   `json:"node_secret,omitempty"`
	HeartbeatInterval Duration `json:"heartbeat_interval"`
	Servers           []string `json:"servers"`
}

// Heartbeat is the body of a heartbeat message.
type Heartbeat struct {
	Interval Duration `json:"interval"`
}

// Redirect is the body of an error message with code CodeNotLeader: the
// agent redials the leader.
type Redirect struct {
	Leader string `json:"leader"`
}

// Assign carries the desired replica set of a node: the whole set, or,
// with Changes, what changed since the last assignment of the session
// (the replicas added or changed, the ids of those removed). A server sends
// changes only to an agent whose hello asked for them (AssignChanges), and
// only after the session's first, whole set.
type Assign struct {
	Generation uint64            `json:"generation"`
	Replicas   []AssignedReplica `json:"replicas"`
	Changes    bool              `json:"changes,omitempty"`
	Removed    []string          `json:"removed,omitempty"`
}

// AssignedReplica is one replica a node must run, with its spec.
type AssignedReplica struct {
	ID          string `json:"id"`
	Tenant      string `json:"tenant"`
	Instance    string `json:"instance"`
	Environment string `json:"environment"`
	Version     uint64 `json:"version"`
	Spec        Spec   `json:"spec"`
	// Ports already chosen for this replica (kept across agent restarts).
	Ports map[string]int `json:"ports,omitempty"`
	// Plan and Release (of an instance of a product) are told to the
	// replica with its flags.
	Plan    string `json:"plan,omitempty"`
	Release string `json:"release,omitempty"`
	// Flags are the instance's resolved feature flags; unlike the rest of
	// an assignment they change during the replica's life.
	Flags []ResolvedFlag `json:"flags,omitempty"`
}

// Status reports replica changes and the generation the agent applied.
type Status struct {
	// Seq numbers status batches of one agent; the server acks by Seq.
	Seq        uint64          `json:"seq"`
	Generation uint64          `json:"generation"`
	Replicas   []ReplicaReport `json:"replicas,omitempty"`
	Metrics    *Metrics        `json:"metrics,omitempty"`
}

// Validate checks a status message.
func (s *Status) Validate() error {
	if len(s.Replicas) > MaxReportsPerStatus {
		return FieldError("replicas", "at most %d reports", MaxReportsPerStatus)
	}
	for i := range s.Replicas {
		if err := s.Replicas[i].Validate(); err != nil {
			e := AsError(err)
			e.Field = fmt.Sprintf("replicas[%d].%s", i, e.Field)
			return e
		}
	}
	return nil
}

// ReplicaReport is what an agent observes of one replica.
type ReplicaReport struct {
	ID        string         `json:"id"`
	State     string         `json:"state"`
	Health    string         `json:"health,omitempty"`
	Ports     map[string]int `json:"ports,omitempty"`
	Restarts  int            `json:"restarts"`
	StartedAt time.Time      `json:"started_at,omitzero"`
	Message   string         `json:"message,omitempty"`
}

// MaxFactBytes bounds each string of a node's facts.
const MaxFactBytes = 256

// Validate checks a hello.
func (h *Hello) Validate() error {
	if h.Name == "" || len(h.Name) > 253 || strings.ContainsFunc(h.Name, unicode.IsControl) {
		return FieldError("name", "must be 1 to 253 printable characters")
	}
	if h.Region != "" {
		if err := ValidateName("region", h.Region); err != nil {
			return err
		}
	}
	if err := ValidateLabels("labels", h.Labels); err != nil {
		return err
	}
	if h.Address != "" && net.ParseIP(h.Address) == nil {
		return FieldError("address", "%q is not an IP address", Truncate(h.Address, 64))
	}
	if h.PortRange.Lo < 1 || h.PortRange.Hi > 65535 || h.PortRange.Lo > h.PortRange.Hi {
		return FieldError("port_range", "must be within 1-65535, lo <= hi")
	}
	r := h.Resources
	if r.CPUMillis < 0 || r.MemoryMB < 0 || r.DiskMB < 0 || r.FreeCPUMillis < 0 || r.FreeMemoryMB < 0 || r.FreeDiskMB < 0 {
		return FieldError("resources", "must not be negative")
	}
	f := h.Facts
	for name, v := range map[string]string{"hostname": f.Hostname, "os": f.OS, "platform": f.Platform, "kernel": f.Kernel,
		"arch": f.Arch, "agent_version": f.AgentVersion, "cgroups": f.Cgroups, "limits_reason": f.LimitsReason} {
		if len(v) > MaxFactBytes || strings.ContainsFunc(v, unicode.IsControl) {
			return FieldError("facts."+name, "at most %d printable characters", MaxFactBytes)
		}
	}
	if len(h.Version) > MaxFactBytes {
		return FieldError("version", "at most %d characters", MaxFactBytes)
	}
	if len(h.Replicas) > MaxReportsPerStatus {
		return FieldError("replicas", "at most %d reports", MaxReportsPerStatus)
	}
	for i := range h.Replicas {
		if err := h.Replicas[i].Validate(); err != nil {
			e := AsError(err)
			return FieldError(fmt.Sprintf("replicas[%d].%s", i, e.Field), "%s", e.Message)
		}
	}
	return nil
}

// Validate checks a report.
func (r *ReplicaReport) Validate() error {
	if r.ID == "" || len(r.ID) > 64 {
		return FieldError("id", "must be 1 to 64 characters")
	}
	switch r.State {
	case ReplicaPending, ReplicaStarting, ReplicaRunning, ReplicaHealthy, ReplicaUnhealthy,
		ReplicaStopping, ReplicaStopped, ReplicaFailed, ReplicaLost:
	default:
		return FieldError("state", "%q is not a replica state", r.State)
	}
	switch r.Health {
	case "", HealthUnknown, HealthPassing, HealthFailing:
	default:
		return FieldError("health", "%q is not a health value", r.Health)
	}
	if len(r.Message) > MaxMessageBytes {
		return FieldError("message", "at most %d bytes", MaxMessageBytes)
	}
	if r.Restarts < 0 {
		return FieldError("restarts", "must not be negative")
	}
	if len(r.Ports) > MaxPorts {
		return FieldError("ports", "at most %d", MaxPorts)
	}
	return nil
}

// Metrics is a node's load, sent with status.
type Metrics struct {
	CPUPercent   float64 `json:"cpu_percent"`
	MemoryUsedMB int64   `json:"memory_used_mb"`
	DiskUsedMB   int64   `json:"disk_used_mb"`
	Load1        float64 `json:"load1"`
}

// Ack confirms that status batches up to Seq are committed.
type Ack struct {
	Seq uint64 `json:"seq"`
}

// LogRequest asks an agent to stream a replica's output.
type LogRequest struct {
	Stream  string `json:"stream"` // id chosen by the server
	Replica string `json:"replica"`
	Tail    int    `json:"tail"`
	Follow  bool   `json:"follow"`
	Cancel  bool   `json:"cancel,omitempty"`
}

// LogData is a chunk of a replica's output. EOF ends the stream; Error says why.
type LogData struct {
	Stream string `json:"stream"`
	Data   string `json:"data,omitempty"`
	EOF    bool   `json:"eof,omitempty"`
	Error  string `json:"error,omitempty"`
}

// EncodeMessage builds an envelope of type typ around body.
func EncodeMessage(typ MessageType, id string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	out, err := json.Marshal(Envelope{Type: typ, ID: id, Body: b})
	if err != nil {
		return nil, err
	}
	if len(out) > MaxFrameBytes {
		return nil, fmt.Errorf("encode %s: %d bytes over the frame limit of %d", typ, len(out), MaxFrameBytes)
	}
	return out, nil
}

// DecodeMessage parses an envelope and checks its type is known.
func DecodeMessage(b []byte) (*Envelope, error) {
	if len(b) > MaxFrameBytes {
		return nil, fmt.Errorf("message of %d bytes over the frame limit of %d", len(b), MaxFrameBytes)
	}
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	if !e.Type.known() {
		return nil, fmt.Errorf("decode message: unknown type %q", e.Type)
	}
	return &e, nil
}

// ReadMessage reads one message of the agent channel from c and decodes
// it: the one way both ends read. Binary frames are refused. The read's
// deadline is ctx's.
func ReadMessage(ctx context.Context, c *websocket.Conn) (*Envelope, error) {
	typ, b, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, errors.New("binary message not expected")
	}
	return DecodeMessage(b)
}

// WriteMessage encodes a message of type typ around body and writes it to
// c within timeout: the one way both ends write.
func WriteMessage(ctx context.Context, c *websocket.Conn, timeout time.Duration, typ MessageType, body any) error {
	b, err := EncodeMessage(typ, "", body)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.Write(wctx, websocket.MessageText, b)
}

// DecodeBody decodes an envelope's body into v; a body that does not
// decode is invalid_argument naming the message type.
func DecodeBody(env *Envelope, v any) error {
	if err := json.Unmarshal(env.Body, v); err != nil {
		return Errorf(CodeInvalidArgument, "decode %s: %v", env.Type, err)
	}
	return nil
}

// NewChannelError builds the body of an error message; body, when not
// nil, is encoded into it (a Redirect for CodeNotLeader).
func NewChannelError(code Code, message string, body any) (*ChannelError, error) {
	e := &ChannelError{Code: code, Message: message}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode error body: %w", err)
		}
		e.Body = b
	}
	return e, nil
}
