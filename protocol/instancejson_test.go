package protocol_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// AppendInstanceJSON writes what encoding/json writes, for instances whose
// every field, down to the spec's, is set or left zero at random: a field
// it does not know of shows as a difference.
func TestAppendInstanceJSON(t *testing.T) {
	checkEncoder(t, rand.New(rand.NewPCG(1, 2)), "Instance", protocol.AppendInstanceJSON)
}

// checkEncoder compares enc with json.Marshal on 3,000 values of T filled
// at random by r (the first with every field set).
func checkEncoder[T any](t *testing.T, r *rand.Rand, name string, enc func([]byte, *T) ([]byte, error)) {
	t.Helper()
	for i := range 3000 {
		var v T
		fill(t, r, reflect.ValueOf(&v).Elem(), name, i == 0)
		want, err := json.Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := enc([]byte("prefix"), &v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "prefix"+string(want) {
			t.Fatalf("%s %d:\ngot  %s\nwant prefix%s", name, i, got, want)
		}
	}
}

// AppendNodeJSON writes what encoding/json writes, for nodes filled at
// random as TestAppendInstanceJSON fills instances.
func TestAppendNodeJSON(t *testing.T) {
	checkEncoder(t, rand.New(rand.NewPCG(3, 4)), "Node", protocol.AppendNodeJSON)
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		n := protocol.Node{Load: &protocol.Metrics{CPUPercent: v}}
		if _, err := json.Marshal(&n); err == nil {
			t.Fatalf("json.Marshal took %v", v)
		}
		if _, err := protocol.AppendNodeJSON(nil, &n); err == nil {
			t.Fatalf("AppendNodeJSON took %v", v)
		}
	}
}

// A time encoding/json refuses is refused, as json.Marshal refuses it.
func TestAppendInstanceJSONBadTime(t *testing.T) {
	for _, in := range []protocol.Instance{
		{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Status: &protocol.InstanceStatus{Deployment: &protocol.Deployment{Deadline: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}}},
	} {
		if _, err := json.Marshal(&in); err == nil {
			t.Fatal("json.Marshal took a time out of range")
		}
		if _, err := protocol.AppendInstanceJSON(nil, &in); err == nil {
			t.Fatal("AppendInstanceJSON took a time out of range")
		}
	}
}

var (
	fillStrings = []string{"", "acme", "a/b", "<script>&</script>", `quote " and \ back`, "ctl \x00\x01\b\f\n\r\t\x1f",
		"é µs 日本", "line\u2028sep\u2029", "bad \xff utf-8", "\x7f"}
	fillInts   = []int64{0, 1, -7, 1500, int64(5 * time.Minute), int64(-3 * time.Second), int64(time.Microsecond), math.MaxInt64, math.MinInt64}
	fillUints  = []uint64{0, 1, 42, math.MaxUint64}
	fillFloats = []float64{0, 1, -2.5, 0.1, 1e-7, -3.2e-9, 123456789.125, 1e21, 1.5e300, math.SmallestNonzeroFloat64, 99.99999999}
	fillTimes  = []time.Time{{}, time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 0, time.FixedZone("", 5*3600+1800)), time.Date(2030, 1, 2, 3, 4, 5, 6000, time.FixedZone("", -8*3600))}
)

// fill sets v, and what it holds, to values chosen by r; all sets every
// field (and pointer) rather than about three in four.
func fill(t *testing.T, r *rand.Rand, v reflect.Value, path string, all bool) {
	t.Helper()
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(fillTimes[r.IntN(len(fillTimes))]))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				t.Fatalf("%s.%s is not exported: the encoders' tests do not know it", path, f.Name)
			}
			if all || r.IntN(4) > 0 {
				fill(t, r, v.Field(i), path+"."+f.Name, all)
			}
		}
	case reflect.String:
		v.SetString(fillStrings[r.IntN(len(fillStrings))])
	case reflect.Int, reflect.Int64:
		v.SetInt(fillInts[r.IntN(len(fillInts))])
	case reflect.Uint64:
		v.SetUint(fillUints[r.IntN(len(fillUints))])
	case reflect.Float64:
		v.SetFloat(fillFloats[r.IntN(len(fillFloats))])
	case reflect.Bool:
		v.SetBool(all || r.IntN(2) == 1)
	case reflect.Pointer:
		if all || r.IntN(2) == 1 {
			v.Set(reflect.New(v.Type().Elem()))
			fill(t, r, v.Elem(), path, all)
		}
	case reflect.Slice:
		if !all && r.IntN(3) == 0 {
			return // nil
		}
		n := r.IntN(3)
		if all {
			n = 2
		}
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := range n {
			fill(t, r, v.Index(i), path+"[]", all)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range r.IntN(4) + 1 {
			k := reflect.New(v.Type().Key()).Elem()
			fill(t, r, k, path+"{key}", all)
			e := reflect.New(v.Type().Elem()).Elem()
			fill(t, r, e, path+"{}", all)
			v.SetMapIndex(k, e)
		}
	default:
		t.Fatalf("%s is a %s: the encoders' tests do not know it", path, v.Kind())
	}
}
