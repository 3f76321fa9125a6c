package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

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
		return nil, "", fmt.Errorf("instance file %s: %w", path, err)
	}
	return req, tenant, nil
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
	doc, err := decodeDoc(b)
	if err != nil {
		return fmt.Errorf("%s file %s: %w", what, path, err)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return fmt.Errorf("%s file %s: want a mapping of the %s's fields", what, path, what)
	}
	for _, k := range drop {
		delete(m, k)
	}
	if err := strictDecode(m, v); err != nil {
		return fmt.Errorf("%s file %s: %w", what, path, err)
	}
	return nil
}

// strictDecode decodes a document's map into v as the server does, so that
// a misspelt key is an error here and not a setting silently lost.
func strictDecode(m map[string]any, v any) error {
	buf, err := json.Marshal(m)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fieldError(err)
	}
	return nil
}

// parseInstanceDoc turns a YAML or JSON instance document into a request.
func parseInstanceDoc(b []byte) (*protocol.InstanceRequest, string, error) {
	doc, err := decodeDoc(b)
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
	for k := range instanceFileKeys {
		delete(m, k)
	}
	if _, ok := m["product"]; ok {
		// An instance of a product answers with its resolved spec, which
		// is read-only: its product makes it.
		delete(m, "spec")
	}
	var req protocol.InstanceRequest
	if err := strictDecode(m, &req); err != nil {
		return nil, "", err
	}
	return &req, tenant, nil
}

// decodeDoc reads one JSON or YAML document into maps, slices and scalars.
// JSON is read as JSON (YAML parsers differ on tabs and escapes); anything
// else as YAML.
func decodeDoc(b []byte) (any, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		if dec.More() {
			return nil, fmt.Errorf("holds more than one JSON value")
		}
		return v, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("is empty")
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("holds more than one YAML document")
	}
	return yamlValue(&n)
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
				return nil, fmt.Errorf("line %d: a key must be a plain value", k.Line)
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
				return nil, fmt.Errorf("line %d: key %q is given twice", k.Line, k.Value)
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
				return nil, fmt.Errorf("line %d: %w", n.Line, err)
			}
			return v, nil
		default: // !!str, !!timestamp, !!binary: as written
			return n.Value, nil
		}
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// fieldError words a decoding error of the request with the field at
// fault, as the server would.
func fieldError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		msg := fmt.Sprintf("%s: must be %s, got %s", te.Field, typeName(te.Type), te.Value)
		if te.Type.Kind() == reflect.String && (te.Value == "number" || te.Value == "bool") {
			msg += ` (quote the value in YAML: "...")`
		}
		return errors.New(msg)
	}
	return err
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
