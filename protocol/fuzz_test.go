package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/drover-dev/drover/protocol"
)

// FuzzDecodeMessage feeds arbitrary bytes to the agent protocol's decoder:
// it must never panic, and a message it accepts must decode into its body
// type and encode again to an envelope it accepts.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","body":{"protocol_version":1,"name":"n1","version":"0.1.0","resources":{"cpu_millis":4000},"port_range":{"lo":20000,"hi":21000}}}`,
		`{"type":"welcome","id":"1","body":{"node_id":"n","heartbeat_interval":"5s","servers":["a:1"]}}`,
		`{"type":"assign","body":{"generation":3,"replicas":[{"id":"r1","tenant":"t","instance":"i","version":1,"spec":{"command":["x"]}}]}}`,
		`{"type":"status","body":{"seq":1,"generation":2,"replicas":[{"id":"r1","state":"running","restarts":0}]}}`,
		`{"type":"ack","body":{"seq":9}}`,
		`{"type":"error","body":{"code":"not_leader","message":"x","body":{"leader":"h:1"}}}`,
		`{"type":"heartbeat","body":{"interval":"5s"}}`,
		`{"type":"logs","body":{"stream":"s","replica":"r","tail":10,"follow":true}}`,
		`{"type":"log_data","body":{"stream":"s","data":"line\n","eof":true}}`,
		`{"type":"status","body":null}`,
		`{"type":"hello"}`,
		`{}`, `[]`, `null`, ``, `{"type":"status","body":{"replicas":[{"state":"x"}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := protocol.DecodeMessage(b)
		if err != nil {
			return
		}
		var body any
		switch env.Type {
		case protocol.MsgHello:
			body = &protocol.Hello{}
		case protocol.MsgWelcome:
			body = &protocol.Welcome{}
		case protocol.MsgAssign:
			body = &protocol.Assign{}
		case protocol.MsgStatus:
			body = &protocol.Status{}
		case protocol.MsgAck:
			body = &protocol.Ack{}
		case protocol.MsgError:
			body = &protocol.ChannelError{}
		case protocol.MsgLogs:
			body = &protocol.LogRequest{}
		case protocol.MsgLogData:
			body = &protocol.LogData{}
		case protocol.MsgHeartbeat:
			body = &protocol.Heartbeat{}
		default:
			t.Fatalf("DecodeMessage accepted type %q", env.Type)
		}
		if len(env.Body) > 0 {
			if err := json.Unmarshal(env.Body, body); err != nil {
				return // a bad body is the receiver's to refuse
			}
		}
		if st, ok := body.(*protocol.Status); ok {
			_ = st.Validate()
		}
		out, err := protocol.EncodeMessage(env.Type, env.ID, body)
		if err != nil {
			return // re-encoding may grow past the frame limit
		}
		again, err := protocol.DecodeMessage(out)
		if err != nil {
			t.Fatalf("re-encoded message refused: %v\n%s", err, out)
		}
		if again.Type != env.Type || again.ID != env.ID {
			t.Fatalf("round trip changed the envelope: %+v -> %+v", env, again)
		}
	})
}
