// Package config fills a command's flags from the environment and from an
// optional YAML file: a flag given on the command line wins, then the
// variable DROVER_<FLAG>, then the file's key <flag> (dashes become
// underscores), then the flag's default.
package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// MaxFileBytes bounds a config file.
const MaxFileBytes = 1 << 20

// EnvName is the environment variable of a flag: data-dir -> DROVER_DATA_DIR.
func EnvName(flag string) string {
	return "DROVER_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Apply sets every flag of fs not given on the command line from the
// environment or from the YAML file at path (if path is not empty).
// Unknown keys in the file are an error naming the key.
func Apply(fs *pflag.FlagSet, path string) error {
	file := map[string]any{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if len(b) > MaxFileBytes {
			return fmt.Errorf("config file %s: over %d bytes", path, MaxFileBytes)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		var unknown []string
		for k := range file {
			if fs.Lookup(strings.ReplaceAll(k, "_", "-")) == nil || k == "config" {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("config file %s: unknown key %q", path, unknown[0])
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "config" {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := setAll(f, splitList(f, v)); e != nil {
				err = fmt.Errorf("environment %s: %w", EnvName(f.Name), e)
			}
			return
		}
		key := strings.ReplaceAll(f.Name, "-", "_")
		if v, ok := file[key]; ok {
			if e := setAll(f, yamlValues(v)); e != nil {
				err = fmt.Errorf("config file %s: key %s: %w", path, key, e)
			}
		}
	})
	return err
}

// isList reports whether a flag takes several values.
func isList(f *pflag.Flag) bool {
	return strings.HasSuffix(f.Value.Type(), "Slice") || strings.HasSuffix(f.Value.Type(), "Array")
}

func splitList(f *pflag.Flag, v string) []string {
	if isList(f) {
		return strings.Split(v, ",")
	}
	return []string{v}
}

func setAll(f *pflag.Flag, vals []string) error {
	if isList(f) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			return sv.Replace(vals)
		}
	}
	for _, v := range vals {
		if err := f.Value.Set(v); err != nil {
			return err
		}
	}
	f.Changed = true
	return nil
}

// yamlValues turns a YAML value into flag values: scalars as they are,
// lists one per element, maps as key=value (for -label).
func yamlValues(v any) []string {
	switch t := v.(type) {
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			out = append(out, fmt.Sprint(e))
		}
		return out
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([]string, 0, len(t))
		for _, k := range keys {
			out = append(out, k+"="+fmt.Sprint(t[k]))
		}
		return out
	case nil:
		return nil
	default:
		return []string{fmt.Sprint(t)}
	}
}
