package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
)

func TestParseInstanceDoc(t *testing.T) {
	req, tenant, err := parseInstanceDoc([]byte(crmYAML))
	if err != nil {
		t.Fatal(err)
	}
	if tenant != "acme" || req.Name != "crm" || req.Environment != "production" || req.Replicas == nil || *req.Replicas != 2 {
		t.Errorf("request = %+v, tenant %q", req, tenant)
	}
	h := req.Spec.Health
	if h == nil || h.Type != "http" || h.Interval.D() != 2*time.Second || h.Timeout.D() != time.Second {
		t.Errorf("health = %+v", h)
	}
	if req.Spec.Update.HealthyDeadline.D() != 2*time.Minute || req.Spec.Version != "1.4.2" {
		t.Errorf("spec = %+v", req.Spec)
	}
	if got := strings.Join(req.Spec.Command, " "); got != "/opt/crm/bin/crm --listen 127.0.0.1:${PORT}" {
		t.Errorf("command = %q", got)
	}

	// The same document in JSON gives the same request.
	j, _ := json.Marshal(map[string]any{"tenant": "acme", "name": "crm", "environment": "production", "replicas": 2,
		"spec": map[string]any{"version": "1.4.2", "command": req.Spec.Command, "ports": []string{"http"},
			"health":  map[string]any{"type": "http", "port": "http", "path": "/healthz", "interval": "2s", "timeout": "1s"},
			"update":  map[string]any{"min_healthy_time": "5s", "healthy_deadline": "2m"},
			"secrets": nil}})
	jreq, jtenant, err := parseInstanceDoc(append([]byte("\t\n"), j...))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(req)
	b, _ := json.Marshal(jreq)
	if jtenant != "acme" || !bytes.Equal(a, b) {
		t.Errorf("JSON and YAML differ:\n%s\n%s", a, b)
	}
}

func TestParseInstanceDocYAMLFeatures(t *testing.T) {
	doc := `
name: crm
x-common: &common
  LOG_LEVEL: info
  TZ: UTC
spec:
  command: [/bin/app]
  env:
    <<: *common
    TZ: Europe/Paris
    STARTED: 2024-01-02
  secrets: {TOKEN: "0x10"}
`
	// x-common is not a field: refused, like the server refuses it.
	if _, _, err := parseInstanceDoc([]byte(doc)); err == nil || !strings.Contains(err.Error(), `x-common: unknown field`) {
		t.Fatalf("err = %v, want the unknown field named", err)
	}
	doc = strings.Replace(doc, "x-common: &common\n  LOG_LEVEL: info\n  TZ: UTC\n", "", 1)
	doc = strings.Replace(doc, "<<: *common", "<<: {LOG_LEVEL: info, TZ: UTC}", 1)
	req, tenant, err := parseInstanceDoc([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	env := req.Spec.Env
	// Merged keys do not override the mapping's own; a date stays as written.
	if tenant != "" || env["LOG_LEVEL"] != "info" || env["TZ"] != "Europe/Paris" || env["STARTED"] != "2024-01-02" {
		t.Errorf("env = %v", env)
	}
	if req.Spec.Secrets["TOKEN"] != "0x10" {
		t.Errorf("secrets = %v", req.Spec.Secrets)
	}
}

func TestParseInstanceDocErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"empty", "", "is empty"},
		{"not a mapping", "- a\n- b\n", "want a mapping"},
		{"two documents", "name: a\n---\nname: b\n", "more than one YAML document"},
		{"two JSON values", `{"name":"a"} {"name":"b"}`, "more than one JSON value"},
		{"bad YAML", "name: [a\n", "invalid YAML"},
		{"duplicate key", "name: a\nname: b\n", `key "name" is given twice`},
		{"unknown field", "name: a\nspec: {comand: [x]}\n", `spec.comand: unknown field (did you mean "command"?)`},
		{"number for a string", "name: a\nspec: {version: 1.10}\n", "spec.version: must be a string, got number (quote the value"},
		{"bad duration", "name: a\nspec: {stop: {timeout: soon}}\n", "spec.stop.timeout"},
		{"tenant not a string", "tenant: [a]\nname: a\n", "tenant must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseInstanceDoc([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// A file's error names the file, the line and the field at fault, the
// way an operator finds it: instance, rollout and catalog files alike.
func TestFileErrorsNameFileLineAndField(t *testing.T) {
	const demo = `tenant: acme
name: crm
environment: staging
spec:
  version: "1.0"
  command: [/bin/app]
  health:
    type: http
    interval: 2s
`
	f := newFakeAPI(t)
	for _, tc := range []struct {
		name, verb, doc string
		want            string // the error line after "Error: FILE"
	}{
		{"misspelt key", "instance", strings.Replace(demo, "  command:", "  comand:", 1),
			`:6: spec.comand: unknown field (did you mean "command"?)`},
		{"misspelt top key", "instance", strings.Replace(demo, "environment:", "enviroment:", 1),
			`:3: enviroment: unknown field (did you mean "environment"?)`},
		{"key of nothing known", "instance", demo + "  flavour: vanilla\n",
			`:10: spec.flavour: unknown field`},
		{"bad duration", "instance", strings.Replace(demo, "interval: 2s", "interval: 1sec", 1),
			`:9: spec.health.interval: "1sec" is not a duration (use 1s, 500ms, 2m)`},
		{"bad duration in a flow mapping", "instance", strings.Replace(demo, "  health:\n    type: http\n    interval: 2s\n", "  health: {type: http, interval: soon}\n", 1),
			`:7: spec.health.interval: "soon" is not a duration (use 1s, 500ms, 2m)`},
		{"number for a string", "instance", strings.Replace(demo, `"1.0"`, "1.10", 1),
			`:5: spec.version: must be a string, got number (quote the value in YAML: "...")`},
		{"mis-indented line", "instance", strings.Replace(demo, "    interval: 2s", "   interval: 2s", 1),
			`:9: invalid YAML: did not find expected key (is the line indented like the others of its mapping?)`},
		{"mis-indented line in the middle", "instance", strings.Replace(demo, "  command:", "    command:", 1),
			`:6: invalid YAML:`},
		{"duplicate key", "instance", demo + "name: other\n", `:10: key "name" is given twice`},
		{"JSON", "instance", `{"tenant": "acme", "name": "crm",
 "spec": {"comand": ["/bin/app"]}}`, `:2: spec.comand: unknown field (did you mean "command"?)`},
		{"invalid JSON", "instance", "{\"name\": \"crm\",\n \"spec\": {,}}", `:2: invalid JSON:`},
		{"rollout", "rollout", "product: crm\nrelease: \"2.0\"\nwaves:\n  - selector: {environments: [staging]}\n    bak: 10m\n",
			`:5: waves[0].bak: unknown field (did you mean "bake"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "demo.yaml", tc.doc)
			args := []string{"instance", "create", "-f", path}
			if tc.verb == "rollout" {
				args = []string{"rollout", "create", "-f", path}
			}
			_, stderr, code := runCLI(t, append(args, "-addr", f.url)...)
			first, _, _ := strings.Cut(stderr, "\n")
			if code == 0 || !strings.HasPrefix(first, "Error: "+path+tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant a first line starting %q", code, stderr, "Error: "+path+tc.want)
			}
		})
	}
	if f.requests() != 0 {
		t.Errorf("%d requests sent for files with errors", f.requests())
	}
}

func TestProgress(t *testing.T) {
	in := &protocol.Instance{ID: "acme/crm", Replicas: 2, Version: 3,
		Deployment: &protocol.Deployment{ToVersion: 3, State: protocol.DeploymentRunning}}
	pending := client.NewProgress(in, []*protocol.Replica{
		{Version: 3, Desired: protocol.DesiredRun, State: protocol.ReplicaPending},
	}, 3)
	placed := client.NewProgress(in, []*protocol.Replica{
		{Version: 3, Desired: protocol.DesiredRun, Node: "n1", State: protocol.ReplicaRunning},
		{Version: 3, Desired: protocol.DesiredRun, Node: "n2", State: protocol.ReplicaFailed},
	}, 3)

	var b bytes.Buffer
	p := &progress{w: &b}
	p.update(pending)
	p.update(pending) // unchanged: not printed again
	p.update(placed)
	p.end()
	want := "acme/crm version 3: 0/2 placed, 0/2 running, 0/2 healthy; deployment running\n" +
		"acme/crm version 3: 2/2 placed, 1/2 running, 0/2 healthy, 1 failed; deployment running\n"
	if b.String() != want {
		t.Errorf("pipe progress:\n%q\nwant\n%q", b.String(), want)
	}

	b.Reset()
	p = &progress{w: &b, tty: true}
	p.update(pending)
	p.update(placed)
	p.end()
	if got := b.String(); strings.Count(got, "\r\033[K") != 2 || strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "deployment running\n") {
		t.Errorf("terminal progress = %q, want two in-place updates and one newline", got)
	}
}

func TestAge(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		5 * time.Second: "5s", 90 * time.Second: "1m", 3 * time.Hour: "3h", 72 * time.Hour: "3d", -time.Second: "0s",
	} {
		if got := age(now.Add(-d), now); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
	if age(time.Time{}, now) != "" {
		t.Error("age of the zero time is not empty")
	}
}

func TestNormalizeKeepsShortOutputFlag(t *testing.T) {
	got := normalizeArgs([]string{"-o", "json", "-addr=http://x:1", "-output", "table", "-f", "crm.yaml"})
	want := []string{"-o", "json", "--addr=http://x:1", "--output", "table", "-f", "crm.yaml"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("normalizeArgs = %q, want %q", got, want)
	}
}
