package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func flags() (*pflag.FlagSet, *string, *int, *[]string, *[]string) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	dir := fs.String("data-dir", "", "")
	n := fs.Int("bootstrap-expect", 0, "")
	join := fs.StringSlice("join", nil, "")
	labels := fs.StringArray("label", nil, "")
	fs.String("config", "", "")
	return fs, dir, n, join, labels
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The command line wins, then the environment, then the file.
func TestPrecedence(t *testing.T) {
	fs, dir, n, join, labels := flags()
	path := writeFile(t, "data_dir: /from/file\nbootstrap_expect: 3\njoin: [a:1, b:2]\nlabel: {zone: a, tier: gold}\n")
	t.Setenv("DROVER_BOOTSTRAP_EXPECT", "5")
	if err := fs.Parse([]string{"--data-dir", "/from/flag"}); err != nil {
		t.Fatal(err)
	}
	if err := Apply(fs, path); err != nil {
		t.Fatal(err)
	}
	if *dir != "/from/flag" || *n != 5 || !slices.Equal(*join, []string{"a:1", "b:2"}) || !slices.Equal(*labels, []string{"tier=gold", "zone=a"}) {
		t.Fatalf("got data-dir %q, bootstrap-expect %d, join %q, labels %q", *dir, *n, *join, *labels)
	}
}

func TestEnvironmentLists(t *testing.T) {
	fs, _, _, join, _ := flags()
	t.Setenv("DROVER_JOIN", "x:1,y:2")
	if err := Apply(fs, ""); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*join, []string{"x:1", "y:2"}) {
		t.Fatalf("join = %q", *join)
	}
}

func TestBadInputNamesTheKey(t *testing.T) {
	for _, tc := range []struct{ name, file, env, want string }{
		{"unknown key", "data_dir: /x\nbootstrap_expct: 3\n", "", `unknown key "bootstrap_expct"`},
		{"bad value in file", "bootstrap_expect: three\n", "", "key bootstrap_expect"},
		{"bad value in env", "", "nope", "DROVER_BOOTSTRAP_EXPECT"},
		{"not yaml", "data_dir: [unclosed\n", "", "config file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, _, _, _, _ := flags()
			if tc.env != "" {
				t.Setenv("DROVER_BOOTSTRAP_EXPECT", tc.env)
			}
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			err := Apply(fs, path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}
