package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// Duration is a time.Duration written in JSON and YAML as a Go duration
// string ("2s", "5m"). A JSON number is read as nanoseconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return d.appendJSON(make([]byte, 0, 24)), nil
}

// appendJSON appends d as a JSON string. It quotes the string itself,
// which needs no escaping (digits, '.', '-' and unit letters, µ among
// them): lists of instances hold several durations each, and json.Marshal
// was a fair share of their encoding.
func (d Duration) appendJSON(b []byte) []byte {
	b = append(b, '"')
	b = append(b, time.Duration(d).String()...)
	return append(b, '"')
}

// UnmarshalJSON reads a duration string or a number of nanoseconds; null
// leaves d unchanged, as for other JSON types. A bad value is an
// *json.UnmarshalTypeError, so that the decoder names the field at fault.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s, ok := jsonString(b)
	if !ok {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[Duration]()}
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: fmt.Sprintf("string %.40q", s), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(v)
	return nil
}

// jsonString reads b as a JSON string. The decoder hands UnmarshalJSON a
// valid value, and a string without escapes is its bytes between the
// quotes: the state machine decodes several durations in each instance's
// spec, and a nested json.Unmarshal (which scans its input twice) for
// each was a tenth of applying an instance create.
func jsonString(b []byte) (string, bool) {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
		return string(b[1 : len(b)-1]), true
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", false
	}
	return s, true
}

// jsonKind names the kind of a JSON value for an error message.
func jsonKind(b []byte) string {
	switch b = bytes.TrimSpace(b); {
	case len(b) == 0:
		return "nothing"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	case b[0] == 't' || b[0] == 'f':
		return "bool"
	}
	return fmt.Sprintf("number %.40s", b)
}
