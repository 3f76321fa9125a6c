package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/drover-dev/drover/protocol"
)

// FuzzDecodeInstanceRequest feeds arbitrary bodies to the API's request
// decoder and the instance validation. Neither may panic, every refusal is
// an invalid_argument or too_large error, and a request that passes must
// come out of a JSON round trip the same and still valid.
func FuzzDecodeInstanceRequest(f *testing.F) {
	for _, s := range []string{
		`{"name":"crm","environment":"production","plan":"pro","replicas":2,"spec":{"version":"1.4.2","command":["/opt/crm/bin/crm","--listen","127.0.0.1:${PORT}"],"env":{"LOG_LEVEL":"info"},"secrets":{"DB_PASSWORD":"x"},"ports":["http"],"resources":{"cpu_millis":500,"memory_mb":256},"health":{"type":"http","port":"http","path":"/healthz","interval":"2s","timeout":"1s","healthy_threshold":1,"unhealthy_threshold":3,"grace":"5s"},"restart":{"policy":"always","max_attempts":5,"window":"5m","delay":"1s"},"update":{"max_parallel":1,"min_healthy_time":"5s","healthy_deadline":"2m","auto_rollback":true,"canaries":0},"stop":{"signal":"SIGTERM","timeout":"10s"},"constraints":{"region":"eu-west","labels":{"tier":"gold"}}}}`,
		`{"name":"a","spec":{"command":["x"]}}`,
		`{"name":"a","replicas":0,"spec":{"command":["x"],"health":{"type":"exec","command":["check"],"interval":1000000000}}}`,
		`{"name":"a","spec":{"command":["x"],"health":{"type":"tcp","port":"p"},"ports":["p"]}}`,
		`{"name":"a","spec":{"command":["x"],"stop":{"timeout":null}}}`,
		`{"name":"a","spec":{"command":["x\u0000"]}}`,
		`{"name":"a","spec":{"command":["x"],"env":{"A":"\ud800"}}}`,
		`{"name":"a","spec":{"command":["x"]}} {}`,
		`{"name":"a","spec":{"command":["x"],"unknown":1}}`,
		`{"name":"a","spec":{"command":["x"],"health":{"type":"none","grace":"-1s"}}}`,
		`{"name":"a","spec":{"command":["x"],"restart":{"window":"1.5h"}}}`,
		`[]`, `null`, ``, `{`, `{"replicas":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeRequest(body)
		if err != nil {
			e, ok := err.(*protocol.Error)
			if !ok || (e.Code != protocol.CodeInvalidArgument && e.Code != protocol.CodeTooLarge) {
				t.Fatalf("decode answered %T %v", err, err)
			}
			return
		}
		if err := req.Validate(); err != nil {
			if e, ok := err.(*protocol.Error); !ok || e.Code != protocol.CodeInvalidArgument {
				t.Fatalf("Validate answered %T %v", err, err)
			}
			return
		}
		first, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("a valid request does not encode: %v", err)
		}
		again, err := decodeRequest(first)
		if err != nil {
			t.Fatalf("a valid request, encoded, does not decode: %v\n%s", err, first)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("a valid request, encoded and decoded, is invalid: %v\n%s", err, first)
		}
		second, _ := json.Marshal(again)
		if !bytes.Equal(first, second) {
			t.Fatalf("round trip changed the request:\n%s\n%s", first, second)
		}
		// What the API stores and answers must encode too.
		d := req.Spec.WithDefaults()
		if err := d.Validate("spec"); err != nil {
			t.Fatalf("a valid spec with its defaults is invalid: %v", err)
		}
		if _, err := json.Marshal(d.Redacted()); err != nil {
			t.Fatal(err)
		}
	})
}

func decodeRequest(body []byte) (*protocol.InstanceRequest, error) {
	r := httptest.NewRequest("POST", "/v1/tenants/t/instances", bytes.NewReader(body))
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, protocol.MaxBodyBytes)
	var req protocol.InstanceRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return &req, nil
}
