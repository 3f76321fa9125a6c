package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/drover-dev/drover/protocol"
)

// instanceFileKeys are the keys an instance file may hold besides the
// request's own: "tenant" says where to create it (the request has no such
// field), and the read-only fields of an instance answer are dropped, so
// that an instance read with -o json can be edited and sent back.
var instanceFileKeys = map[string]bool{
	"id": true, "tenant": true, "version": true, "stable_version": true, "restart_epoch": true,
	"stopped": true, "deployment": true, "status": true, "created_at": true, "updated_at": true,
	"create_index": true, "modify_index": true,
}

// readInstanceFile reads the instance document of API.md from a YAML or
// JSON file, "-" for in: the request to send and the tenant the file names
// ("" if none).
func readInstanceFile(path string, in io.Reader) (*protocol.InstanceRequest, string, error) {
	b, err := readDocBytes("instance", path, in)
	if err != nil {
		return nil, "", err
	}
	req, tenant, err := parseInstanceDoc(b)
	if err != nil {
		return nil, "", fileError("instance", path, err)
	}
	return req, tenant, nil
}

// fileError names the file of a document's error, and its line when
// known: "crm.yaml:7: spec.health.interval: ...".
func fileError(what, path string, err error) error {
	if path == "-" {
		path = "standard input"
	}
	var de *docError
	if errors.As(err, &de) && de.line > 0 {
		return fmt.Errorf("%s:%d: %w", path, de.line, err)
	}
	return fmt.Errorf("%s file %s: %w", what, path, err)
}

// docError is an error at a place of a document: its line (0 when not
// known) and the path of the field at fault ("" for the document).
type docError struct {
	line  int
	field string
	msg   string
}

func (e *docError) Error() string {
	if e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

// readDocBytes reads a document file of at most MaxBodyBytes, "-" for in.
func readDocBytes(what, path string, in io.Reader) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(in, protocol.MaxBodyBytes+1))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s file: %w", what, err)
	}
	if len(b) > protocol.MaxBodyBytes {
		return nil, fmt.Errorf("%s file %s: over %d bytes", what, path, protocol.MaxBodyBytes)
	}
	return b, nil
}

// readDocFile reads a YAML or JSON document of what (a product, a release)
// into v, strictly, leaving out the read-only keys drop of an answer, so
// that what `show -o json` prints can be edited and sent back.
func readDocFile(what, path string, in io.Reader, v any, drop ...string) error {
	b, err := readDocBytes(what, path, in)
	if err != nil {
		return err
	}
	doc, root, err := decodeDoc(b)
	if err != nil {
		return fileError(what, path, err)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return fmt.Errorf("%s file %s: want a mapping of the %s's fields", what, path, what)
	}
	skip := map[string]bool{}
	for _, k := range drop {
		delete(m, k)
		skip[k] = true
	}
	if err := strictDecode(m, v, root, skip); err != nil {
		return fileError(what, path, err)
	}
	return nil
}

// strictDecode decodes a document's map into v as the server does, so that
// a misspelt key is an error here and not a setting silently lost. root,
// the document's node tree when it has one, locates the fields at fault;
// the top-level keys in skip are not v's and not checked.
func strictDecode(m map[string]any, v any, root *yaml.Node, skip map[string]bool) error {
	if root != nil {
		if err := checkFields(root, reflect.TypeOf(v), "", skip); err != nil {
			return err
		}
	}
	buf, err := json.Marshal(m)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fieldError(err, root)
	}
	return nil
}

// parseInstanceDoc turns a YAML or JSON instance document into a request.
func parseInstanceDoc(b []byte) (*protocol.InstanceRequest, string, error) {
	doc, root, err := decodeDoc(b)
	if err != nil {
		return nil, "", err
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, "", fmt.Errorf("want a mapping of the instance's fields (name, environment, replicas, spec, ...)")
	}
	tenant := ""
	if t, ok := m["tenant"]; ok {
		s, ok := t.(string)
		if !ok {
			return nil, "", fmt.Errorf("tenant must be a string")
		}
		tenant = s
	}
	skip := instanceFileKeys
	for k := range instanceFileKeys {
		delete(m, k)
	}
	if _, ok := m["product"]; ok {
		// An instance of a product answers with its resolved spec, which
		// is read-only: its product makes it.
		delete(m, "spec")
		skip = maps.Clone(skip)
		skip["spec"] = true
	}
	var req protocol.InstanceRequest
	if err := strictDecode(m, &req, root, skip); err != nil {
		return nil, "", err
	}
	return &req, tenant, nil
}

// decodeDoc reads one JSON or YAML document into maps, slices and scalars,
// and returns its top node too, for locating fields (nil if the YAML
// parser cannot read it). JSON is read as JSON (YAML parsers differ on
// tabs and escapes); anything else as YAML.
func decodeDoc(b []byte) (any, *yaml.Node, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			line := 0
			var se *json.SyntaxError
			if errors.As(err, &se) {
				line = 1 + bytes.Count(t[:min(se.Offset, int64(len(t)))], []byte("\n"))
			}
			return nil, nil, &docError{line: line, msg: "invalid JSON: " + err.Error()}
		}
		if dec.More() {
			return nil, nil, fmt.Errorf("holds more than one JSON value")
		}
		var n yaml.Node
		if yaml.Unmarshal(b, &n) != nil {
			return v, nil, nil
		}
		return v, topNode(&n), nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("is empty")
		}
		return nil, nil, yamlSyntaxError(b, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("holds more than one YAML document")
	}
	v, err := yamlValue(&n)
	return v, topNode(&n), err
}

// topNode is a document's top node.
func topNode(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0]
	}
	return n
}

// yamlLine is the "yaml: line N: " of the YAML parser's errors.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// maxLocateLines bounds the lines parsed to locate a syntax error.
const maxLocateLines = 2000

// yamlSyntaxError words the parser's error with the line at fault. The
// parser names the line where the construct it was in began (a mapping
// three lines up for a line indented wrong): the line at fault is the
// first from there that the document's beginning no longer parses with.
func yamlSyntaxError(b []byte, err error) error {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		m = []string{"", ""}
	}
	msg := strings.TrimPrefix(err.Error(), m[0])
	if msg == "did not find expected key" || strings.HasPrefix(msg, "mapping values are not allowed") {
		msg += " (is the line indented like the others of its mapping?)"
	}
	at, _ := strconv.Atoi(m[1])
	lines := bytes.SplitAfter(b, []byte("\n"))
	for k := max(at, 1); k <= len(lines) && k < at+maxLocateLines; k++ {
		var n yaml.Node
		if yaml.Unmarshal(bytes.Join(lines[:k], nil), &n) != nil {
			at = k
			break
		}
	}
	return &docError{line: at, msg: "invalid YAML: " + msg}
}

// checkFields reports the first key of node n that type t has no field
// for, as the server's strict decoding would refuse it, with its line and
// path and the field it may have meant. Top-level keys in skip are left.
func checkFields(n *yaml.Node, t reflect.Type, path string, skip map[string]bool) error {
	for t.Kind() == reflect.Pointer {
		if t.Implements(jsonUnmarshaler) {
			return nil // its own format
		}
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := jsonFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.ShortTag() == "!!merge" {
				if err := checkMerged(v, t, path); err != nil {
					return err
				}
				continue
			}
			if skip[k.Value] {
				continue
			}
			p := join(path, k.Value)
			ft, ok := lookupField(fields, k.Value)
			if !ok {
				msg := "unknown field"
				if s := closest(k.Value, slices.Sorted(maps.Keys(fields))); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				return &docError{line: k.Line, field: p, msg: msg}
			}
			if err := checkFields(v, ft, p, nil); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkFields(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), nil); err != nil {
				return err
			}
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			if err := checkFields(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkMerged checks the mappings a merge key ("<<: *base") brings in.
func checkMerged(v *yaml.Node, t reflect.Type, path string) error {
	if v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	if v.Kind == yaml.SequenceNode {
		for _, c := range v.Content {
			if err := checkFields(c, t, path, nil); err != nil {
				return err
			}
		}
		return nil
	}
	return checkFields(v, t, path, nil)
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// jsonFields are the JSON names of a struct's fields, with those of its
// embedded structs, as encoding/json sees them.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			for k, v := range jsonFields(ft) {
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// lookupField finds a key's field as encoding/json does: exactly, else
// without regard to case.
func lookupField(fields map[string]reflect.Type, key string) (reflect.Type, bool) {
	if t, ok := fields[key]; ok {
		return t, true
	}
	for name, t := range fields {
		if strings.EqualFold(name, key) {
			return t, true
		}
	}
	return nil, false
}

// closest is the name nearest to s by edit distance, if near enough to be
// a typo of it; "" otherwise.
func closest(s string, names []string) string {
	best, bestD := "", len(s)/3+2
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nodeAt is the node at a field path of encoding/json ("spec.health.interval",
// "spec.ports.1"), or the deepest one found on the way; nil without root.
func nodeAt(root *yaml.Node, path string) *yaml.Node {
	n := root
	if n == nil || path == "" {
		return n
	}
	for _, seg := range strings.Split(path, ".") {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg {
					next = n.Content[i+1]
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

// yamlValue converts a YAML node to what encoding/json writes: string keys,
// and scalars resolved by YAML's rules except timestamps, kept as written.
func yamlValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return yamlValue(n.Content[0])
	case yaml.AliasNode:
		return yamlValue(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := yamlValue(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		var merged []map[string]any
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, vn := n.Content[i], n.Content[i+1]
			v, err := yamlValue(vn)
			if err != nil {
				return nil, err
			}
			if k.Kind != yaml.ScalarNode {
				return nil, &docError{line: k.Line, msg: "a key must be a plain value"}
			}
			if k.ShortTag() == "!!merge" {
				switch mv := v.(type) {
				case map[string]any:
					merged = append(merged, mv)
				case []any:
					for _, e := range mv {
						if em, ok := e.(map[string]any); ok {
							merged = append(merged, em)
						}
					}
				}
				continue
			}
			if _, dup := out[k.Value]; dup {
				return nil, &docError{line: k.Line, msg: fmt.Sprintf("key %q is given twice", k.Value)}
			}
			out[k.Value] = v
		}
		for _, mm := range merged {
			for k, v := range mm {
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
		}
		return out, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float", "!!bool", "!!null":
			var v any
			if err := n.Decode(&v); err != nil {
				return nil, &docError{line: n.Line, msg: err.Error()}
			}
			return v, nil
		default: // !!str, !!timestamp, !!binary: as written
			return n.Value, nil
		}
	}
	return nil, &docError{line: n.Line, msg: "unsupported YAML node"}
}

// fieldError words a decoding error of the request with the field at
// fault, as the server would, and its line in root when there is one.
func fieldError(err error, root *yaml.Node) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	e := &docError{field: te.Field}
	n := nodeAt(root, te.Field)
	if n != nil {
		e.line = n.Line
	}
	switch {
	case te.Type == reflect.TypeFor[protocol.Duration]() && n != nil && n.Kind == yaml.ScalarNode:
		e.msg = fmt.Sprintf("%q is not a duration (use 1s, 500ms, 2m)", n.Value)
	case te.Type == reflect.TypeFor[protocol.Duration]():
		e.msg = "must be a duration (1s, 500ms, 2m), got " + te.Value
	default:
		e.msg = fmt.Sprintf("must be %s, got %s", typeName(te.Type), te.Value)
		if te.Type.Kind() == reflect.String && (te.Value == "number" || te.Value == "bool") {
			e.msg += ` (quote the value in YAML: "...")`
		}
	}
	return e
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Uint64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.String()
}
