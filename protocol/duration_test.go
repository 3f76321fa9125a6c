package protocol_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

func TestDurationJSON(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
	}{
		{`"2s"`, 2 * time.Second},
		{`"1h30m"`, 90 * time.Minute},
		{`"150ms"`, 150 * time.Millisecond},
		{`"0s"`, 0},
		{`"-5s"`, -5 * time.Second}, // parsed; Validate refuses it
		{`1500000000`, 1500 * time.Millisecond},
		{`0`, 0},
		{`"1\u0073"`, time.Second}, // an escape: read through the decoder
	}
	for _, tc := range cases {
		var d protocol.Duration
		if err := json.Unmarshal([]byte(tc.in), &d); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if d.D() != tc.want {
			t.Fatalf("%s: got %v want %v", tc.in, d.D(), tc.want)
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var back protocol.Duration
		if err := json.Unmarshal(b, &back); err != nil || back != d {
			t.Fatalf("%s: round trip through %s gave %v, %v", tc.in, b, back, err)
		}
	}
	if b, _ := json.Marshal(protocol.Duration(5 * time.Minute)); string(b) != `"5m0s"` {
		t.Fatalf("5m marshals as %s", b)
	}
	if s := protocol.Duration(1500 * time.Millisecond).String(); s != "1.5s" {
		t.Fatalf("String() = %q", s)
	}
}

// A duration marshals as json.Marshal marshals its string, whatever the
// unit: MarshalJSON quotes it itself.
func TestDurationJSONIsQuotedString(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 1500, time.Microsecond, 1500 * time.Microsecond, -90 * time.Minute,
		2*time.Hour + 3*time.Second + 4, math.MaxInt64, math.MinInt64} {
		got, err := json.Marshal(protocol.Duration(d))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(d.String())
		if string(got) != string(want) {
			t.Fatalf("%v marshals as %s, want %s", d, got, want)
		}
	}
}

func TestDurationJSONNullKeepsValue(t *testing.T) {
	var h protocol.HealthCheck
	h.Interval = protocol.Duration(time.Second)
	if err := json.Unmarshal([]byte(`{"type":"none","interval":null,"grace":null}`), &h); err != nil {
		t.Fatalf("null duration refused: %v", err)
	}
	if h.Interval.D() != time.Second || h.Grace != 0 {
		t.Fatalf("null changed the durations: %+v", h)
	}
}

func TestDurationJSONErrorsNameTheField(t *testing.T) {
	for _, in := range []string{`"5 seconds"`, `"5\"s"`, `"\u0000"`, `"abc"`, `""`, `true`, `{}`, `[]`, `1.5`, `1e3`, `99999999999999999999`} {
		var h protocol.HealthCheck
		err := json.Unmarshal([]byte(`{"type":"none","timeout":`+in+`}`), &h)
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			t.Fatalf("%s: want an UnmarshalTypeError, got %v (%T)", in, err, err)
		}
		if te.Field != "timeout" {
			t.Fatalf("%s: error names field %q, want timeout (%v)", in, te.Field, err)
		}
	}
}
