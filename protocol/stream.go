package protocol

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Topics of the event stream (GET /v1/events).
const (
	TopicInstance   = "instance"
	TopicDeployment = "deployment"
	TopicRollout    = "rollout"
	TopicNode       = "node"
	TopicFlag       = "flag"
	TopicAudit      = "audit"
)

// Topics lists every topic, in the order API.md names them.
var Topics = []string{TopicInstance, TopicDeployment, TopicRollout, TopicNode, TopicFlag, TopicAudit}

// StreamEvent is one event of the cluster-wide stream. Events are written
// by the state machine as it applies each Raft entry, so that every server
// holds the same events under the same ids: a client can resume on any
// server after a leader change.
type StreamEvent struct {
	// Index is the Raft index of the entry that made the event, Seq its
	// place among that entry's events (from 0).
	Index uint64 `json:"index"`
	Seq   uint64 `json:"seq,omitempty"`
	Topic string `json:"topic"`
	// Type says what happened within the topic: "created", "scaled",
	// "replica-healthy", "deployment", "node-down", "instance.scale" (an
	// audit record's action), ...
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Tenant is empty for events of no tenant (nodes, rollouts as a
	// whole): tenant tokens never see those.
	Tenant   string `json:"tenant,omitempty"`
	Instance string `json:"instance,omitempty"`
	Replica  string `json:"replica,omitempty"`
	Node     string `json:"node,omitempty"`
	Rollout  string `json:"rollout,omitempty"`
	Key      string `json:"key,omitempty"`
	Message  string `json:"message,omitempty"`
	// Audit is the record of an audit event.
	Audit *AuditRecord `json:"audit,omitempty"`
}

// EventID is an event's place in the stream: the Raft index of the entry
// that made it and its place among that entry's events.
type EventID struct {
	Index uint64
	Seq   uint64
}

// ID returns the event's id.
func (e *StreamEvent) ID() EventID { return EventID{e.Index, e.Seq} }

// String is the id as the stream's `id:` field carries it: the Raft index
// alone for an entry's first event, "index.seq" for the others.
func (id EventID) String() string {
	if id.Seq == 0 {
		return strconv.FormatUint(id.Index, 10)
	}
	return fmt.Sprintf("%d.%d", id.Index, id.Seq)
}

// Before reports whether id comes before o in the stream.
func (id EventID) Before(o EventID) bool {
	return id.Index < o.Index || id.Index == o.Index && id.Seq < o.Seq
}

// ParseEventID reads an id written by EventID.String.
func ParseEventID(s string) (EventID, error) {
	idx, seq, dotted := strings.Cut(s, ".")
	var id EventID
	var err error
	if id.Index, err = strconv.ParseUint(idx, 10, 64); err != nil {
		return EventID{}, fmt.Errorf("%q is not an event id (INDEX or INDEX.SEQ)", s)
	}
	if dotted {
		if id.Seq, err = strconv.ParseUint(seq, 10, 64); err != nil {
			return EventID{}, fmt.Errorf("%q is not an event id (INDEX or INDEX.SEQ)", s)
		}
	}
	return id, nil
}
