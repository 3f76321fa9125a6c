package protocol_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

func TestEncodeDecodeMessage(t *testing.T) {
	st := protocol.Status{Seq: 7, Generation: 3, Replicas: []protocol.ReplicaReport{
		{ID: "r1", State: protocol.ReplicaHealthy, Health: protocol.HealthPassing, Ports: map[string]int{"http": 20001}, Restarts: 1,
			StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Message: "fine"},
	}}
	b, err := protocol.EncodeMessage(protocol.MsgStatus, "m1", st)
	if err != nil {
		t.Fatal(err)
	}
	env, err := protocol.DecodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != protocol.MsgStatus || env.ID != "m1" {
		t.Fatalf("envelope: %+v", env)
	}
	var back protocol.Status
	if err := json.Unmarshal(env.Body, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, st) {
		t.Fatalf("status round trip:\n got %+v\nwant %+v", back, st)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeMessageRefuses(t *testing.T) {
	cases := map[string][]byte{
		"not json":     []byte("hello"),
		"empty":        nil,
		"array":        []byte(`[]`),
		"no type":      []byte(`{"body":{}}`),
		"unknown type": []byte(`{"type":"shutdown"}`),
		"wrong case":   []byte(`{"type":"HELLO"}`),
		"type number":  []byte(`{"type":1}`),
		"over frame":   []byte(`{"type":"hello","body":"` + strings.Repeat("x", protocol.MaxFrameBytes) + `"}`),
	}
	for name, b := range cases {
		if env, err := protocol.DecodeMessage(b); err == nil {
			t.Errorf("%s: decoded as %+v", name, env)
		}
	}
	for _, typ := range []string{"hello", "welcome", "assign", "status", "ack", "error", "logs", "log_data"} {
		if _, err := protocol.DecodeMessage([]byte(`{"type":"` + typ + `"}`)); err != nil {
			t.Errorf("type %s refused: %v", typ, err)
		}
	}
}

func TestEncodeMessageFrameLimit(t *testing.T) {
	big := protocol.LogData{Stream: "s", Data: strings.Repeat("x", protocol.MaxFrameBytes)}
	if _, err := protocol.EncodeMessage(protocol.MsgLogData, "", big); err == nil {
		t.Fatal("a message over the frame limit was encoded")
	}
	if _, err := protocol.EncodeMessage(protocol.MsgAck, "", func() {}); err == nil {
		t.Fatal("an unencodable body was encoded")
	}
}

func TestStatusValidate(t *testing.T) {
	ok := protocol.ReplicaReport{ID: "r1", State: protocol.ReplicaRunning}
	cases := []struct {
		name  string
		edit  func(s *protocol.Status)
		field string
	}{
		{"valid", func(s *protocol.Status) {}, ""},
		{"no reports", func(s *protocol.Status) { s.Replicas = nil }, ""},
		{"id missing", func(s *protocol.Status) { s.Replicas[1].ID = "" }, "replicas[1].id"},
		{"id too long", func(s *protocol.Status) { s.Replicas[0].ID = strings.Repeat("r", 65) }, "replicas[0].id"},
		{"state unknown", func(s *protocol.Status) { s.Replicas[0].State = "zombie" }, "replicas[0].state"},
		{"state empty", func(s *protocol.Status) { s.Replicas[0].State = "" }, "replicas[0].state"},
		{"message too long", func(s *protocol.Status) { s.Replicas[0].Message = strings.Repeat("m", protocol.MaxMessageBytes+1) }, "replicas[0].message"},
		{"restarts negative", func(s *protocol.Status) { s.Replicas[1].Restarts = -1 }, "replicas[1].restarts"},
		{"unknown health", func(s *protocol.Status) { s.Replicas[1].Health = "ok" }, "replicas[1].health"},
		{"too many ports", func(s *protocol.Status) {
			s.Replicas[0].Ports = map[string]int{}
			for i := 0; i <= protocol.MaxPorts; i++ {
				s.Replicas[0].Ports[fmt.Sprintf("p%d", i)] = 20000 + i
			}
		}, "replicas[0].ports"},
		{"too many reports", func(s *protocol.Status) {
			s.Replicas = make([]protocol.ReplicaReport, protocol.MaxReportsPerStatus+1)
		}, "replicas"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := protocol.Status{Seq: 1, Replicas: []protocol.ReplicaReport{ok, ok}}
			tc.edit(&s)
			wantField(t, s.Validate(), tc.field)
		})
	}
	for _, h := range []string{"", protocol.HealthUnknown, protocol.HealthPassing, protocol.HealthFailing} {
		r := protocol.ReplicaReport{ID: "r", State: protocol.ReplicaRunning, Health: h}
		if err := r.Validate(); err != nil {
			t.Errorf("health %q refused: %v", h, err)
		}
	}
	for _, st := range []string{"pending", "starting", "running", "healthy", "unhealthy", "stopping", "stopped", "failed", "lost"} {
		r := protocol.ReplicaReport{ID: "r", State: st}
		if err := r.Validate(); err != nil {
			t.Errorf("state %s refused: %v", st, err)
		}
	}
}

func TestReplicaTerminal(t *testing.T) {
	for st, want := range map[string]bool{"pending": false, "running": false, "healthy": false, "stopping": false,
		"stopped": true, "failed": true, "lost": true} {
		if got := (&protocol.Replica{State: st}).Terminal(); got != want {
			t.Errorf("%s: Terminal() = %v", st, got)
		}
	}
}

func TestHelloValidate(t *testing.T) {
	ok := func() protocol.Hello {
		return protocol.Hello{ProtocolVersion: protocol.AgentProtocolVersion, Name: "web-1", Region: "eu-west",
			PortRange: protocol.PortRange{Lo: 20000, Hi: 20100}, Facts: protocol.NodeFacts{OS: "linux"}}
	}
	h := ok()
	if err := h.Validate(); err != nil {
		t.Fatalf("valid hello refused: %v", err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*protocol.Hello)
	}{
		{"name", func(h *protocol.Hello) { h.Name = "" }},
		{"name", func(h *protocol.Hello) { h.Name = "a\nb" }},
		{"region", func(h *protocol.Hello) { h.Region = "EU" }},
		{"port_range", func(h *protocol.Hello) { h.PortRange = protocol.PortRange{Lo: 30000, Hi: 20000} }},
		{"resources", func(h *protocol.Hello) { h.Resources.MemoryMB = -1 }},
		{"facts.kernel", func(h *protocol.Hello) { h.Facts.Kernel = strings.Repeat("x", protocol.MaxFactBytes+1) }},
		{"replicas[0].state", func(h *protocol.Hello) { h.Replicas = []protocol.ReplicaReport{{ID: "r1", State: "dancing"}} }},
	} {
		h := ok()
		tc.edit(&h)
		err := h.Validate()
		if e := protocol.AsError(err); err == nil || e.Field != tc.field || e.Code != protocol.CodeInvalidArgument {
			t.Errorf("%s: got %v, want invalid_argument on %s", tc.field, err, tc.field)
		}
	}
}
