package state

import (
	"reflect"
	"testing"
	"time"
)

// A fork applies a copy of each plan (Fork.PlayPlan), and the scheduler
// then proposes the plan it made: the copy must equal the plan and share
// no map, slice or pointer with it, whatever fields the plan and what it
// holds gain.
func TestPlanCloneSharesNothing(t *testing.T) {
	var p Plan
	fill(reflect.ValueOf(&p).Elem())
	c := p.clone()
	if !reflect.DeepEqual(&p, c) {
		t.Fatalf("clone differs:\n%+v\n%+v", p, *c)
	}
	if shared := sharedRefs(reflect.ValueOf(p), reflect.ValueOf(*c), "Plan"); len(shared) > 0 {
		t.Fatalf("the clone shares %v with the plan", shared)
	}
}

var timeType = reflect.TypeFor[time.Time]()

// fill gives every field reachable from v a value that is not zero: maps
// and slices hold two entries, pointers point at filled values.
func fill(v reflect.Value) {
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(time.Date(2026, 12, 5, 1, 2, 3, 4, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(7.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i))
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k)
			if k.Kind() == reflect.String {
				k.SetString(string(rune('a' + i)))
			}
			fill(e)
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	}
}

// sharedRefs lists the paths where a and b hold the same map, slice or
// pointer.
func sharedRefs(a, b reflect.Value, path string) []string {
	if a.Type() == timeType {
		return nil
	}
	var out []string
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return nil
		}
		if a.Pointer() == b.Pointer() {
			return []string{path}
		}
		return sharedRefs(a.Elem(), b.Elem(), path)
	case reflect.Map:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return []string{path}
		}
		for _, k := range a.MapKeys() {
			out = append(out, sharedRefs(a.MapIndex(k), b.MapIndex(k), path+"["+k.String()+"]")...)
		}
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return []string{path}
		}
		for i := range a.Len() {
			out = append(out, sharedRefs(a.Index(i), b.Index(i), path+"[]")...)
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				out = append(out, sharedRefs(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)...)
			}
		}
	}
	return out
}
