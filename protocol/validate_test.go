package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// validRequest returns an instance request that passes Validate, with
// every optional part of the spec filled in.
func validRequest() protocol.InstanceRequest {
	two := 2
	drain := protocol.Duration(3 * time.Second)
	return protocol.InstanceRequest{
		Name: "crm", Environment: "production", Plan: "pro", Replicas: &two,
		Spec: protocol.Spec{
			Version:   "1.4.2",
			Command:   []string{"/opt/crm/bin/crm", "--listen", "127.0.0.1:${PORT}"},
			Env:       map[string]string{"LOG_LEVEL": "info"},
			Secrets:   map[string]string{"DB_PASSWORD": "hunter2"},
			Ports:     []string{"http", "admin"},
			Resources: protocol.Resources{CPUMillis: 500, MemoryMB: 256},
			Health: &protocol.HealthCheck{Type: "http", Port: "http", Path: "/healthz",
				Interval: protocol.Duration(2 * time.Second), Timeout: protocol.Duration(time.Second),
				HealthyThreshold: 1, UnhealthyThreshold: 3, Grace: protocol.Duration(5 * time.Second)},
			Restart:     protocol.RestartPolicy{Policy: "always", MaxAttempts: 5, Window: protocol.Duration(5 * time.Minute), Delay: protocol.Duration(time.Second)},
			Update:      protocol.UpdateStrategy{MaxParallel: 1, MinHealthyTime: protocol.Duration(5 * time.Second), HealthyDeadline: protocol.Duration(2 * time.Minute), AutoRollback: true},
			Stop:        protocol.StopPolicy{Signal: "SIGTERM", Timeout: protocol.Duration(10 * time.Second), Drain: &drain},
			Constraints: protocol.Constraints{Region: "eu-west", Labels: map[string]string{"tier": "gold"}},
			User:        "crm",
		},
	}
}

func ptr[T any](v T) *T { return &v }

func manyEnv(n int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("V%d", i)] = "x"
	}
	return m
}

func manyLabels(n int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

// wantField checks that err is an invalid_argument naming field.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("want no error, got %v", err)
		}
		return
	}
	var e *protocol.Error
	if !errors.As(err, &e) {
		t.Fatalf("want invalid_argument on %q, got %v (%T)", field, err, err)
	}
	if e.Code != protocol.CodeInvalidArgument || e.Field != field {
		t.Fatalf("want invalid_argument on %q, got code %q field %q: %s", field, e.Code, e.Field, e.Message)
	}
	if e.Message == "" {
		t.Fatalf("error on %q has no message", field)
	}
}

func TestInstanceRequestValidate(t *testing.T) {
	long := strings.Repeat("a", 64)
	cases := []struct {
		name  string
		edit  func(r *protocol.InstanceRequest)
		field string // "" means valid
	}{
		{"valid", func(r *protocol.InstanceRequest) {}, ""},
		{"minimal", func(r *protocol.InstanceRequest) {
			*r = protocol.InstanceRequest{Name: "a", Spec: protocol.Spec{Command: []string{"x"}}}
		}, ""},

		// names
		{"name missing", func(r *protocol.InstanceRequest) { r.Name = "" }, "name"},
		{"name upper case", func(r *protocol.InstanceRequest) { r.Name = "CRM" }, "name"},
		{"name leading dash", func(r *protocol.InstanceRequest) { r.Name = "-crm" }, "name"},
		{"name trailing dash", func(r *protocol.InstanceRequest) { r.Name = "crm-" }, "name"},
		{"name underscore", func(r *protocol.InstanceRequest) { r.Name = "c_rm" }, "name"},
		{"name slash", func(r *protocol.InstanceRequest) { r.Name = "a/b" }, "name"},
		{"name 64 chars", func(r *protocol.InstanceRequest) { r.Name = long }, "name"},
		{"name 63 chars", func(r *protocol.InstanceRequest) { r.Name = long[:63] }, ""},
		{"name one char", func(r *protocol.InstanceRequest) { r.Name = "7" }, ""},
		{"name inner dashes", func(r *protocol.InstanceRequest) { r.Name = "a--b" }, ""},
		{"environment bad", func(r *protocol.InstanceRequest) { r.Environment = "Prod" }, "environment"},
		{"environment empty is default", func(r *protocol.InstanceRequest) { r.Environment = "" }, ""},
		{"plan bad", func(r *protocol.InstanceRequest) { r.Plan = "pro plan" }, "plan"},
		{"plan empty", func(r *protocol.InstanceRequest) { r.Plan = "" }, ""},

		// replicas 0..1000
		{"replicas negative", func(r *protocol.InstanceRequest) { r.Replicas = ptr(-1) }, "replicas"},
		{"replicas zero", func(r *protocol.InstanceRequest) { r.Replicas = ptr(0) }, ""},
		{"replicas max", func(r *protocol.InstanceRequest) { r.Replicas = ptr(protocol.MaxReplicas) }, ""},
		{"replicas over max", func(r *protocol.InstanceRequest) { r.Replicas = ptr(protocol.MaxReplicas + 1) }, "replicas"},
		{"replicas absent", func(r *protocol.InstanceRequest) { r.Replicas = nil }, ""},

		// version
		{"version too long", func(r *protocol.InstanceRequest) { r.Spec.Version = strings.Repeat("v", protocol.MaxVersionBytes+1) }, "spec.version"},
		{"version at limit", func(r *protocol.InstanceRequest) { r.Spec.Version = strings.Repeat("v", protocol.MaxVersionBytes) }, ""},

		// argv
		{"command missing", func(r *protocol.InstanceRequest) { r.Spec.Command = nil }, "spec.command"},
		{"command empty list", func(r *protocol.InstanceRequest) { r.Spec.Command = []string{} }, "spec.command"},
		{"command empty program", func(r *protocol.InstanceRequest) { r.Spec.Command = []string{"", "x"} }, "spec.command[0]"},
		{"command empty argument ok", func(r *protocol.InstanceRequest) { r.Spec.Command = []string{"x", ""} }, ""},
		{"command NUL in program", func(r *protocol.InstanceRequest) { r.Spec.Command = []string{"a\x00b"} }, "spec.command[0]"},
		{"command NUL in argument", func(r *protocol.InstanceRequest) { r.Spec.Command = []string{"x", "y", "a\x00"} }, "spec.command[2]"},
		{"command too many args", func(r *protocol.InstanceRequest) {
			r.Spec.Command = make([]string, protocol.MaxArgs+1)
			r.Spec.Command[0] = "x"
		}, "spec.command"},
		{"command max args", func(r *protocol.InstanceRequest) {
			r.Spec.Command = make([]string, protocol.MaxArgs)
			r.Spec.Command[0] = "x"
		}, ""},
		{"command arg too long", func(r *protocol.InstanceRequest) {
			r.Spec.Command = []string{"x", strings.Repeat("a", protocol.MaxArgBytes+1)}
		}, "spec.command[1]"},
		{"command arg at limit", func(r *protocol.InstanceRequest) {
			r.Spec.Command = []string{"x", strings.Repeat("a", protocol.MaxArgBytes)}
		}, ""},

		// env
		{"env key starts with digit", func(r *protocol.InstanceRequest) { r.Spec.Env = map[string]string{"1A": "x"} }, "spec.env.1A"},
		{"env key with dash", func(r *protocol.InstanceRequest) { r.Spec.Env = map[string]string{"A-B": "x"} }, "spec.env.A-B"},
		{"env key with equals", func(r *protocol.InstanceRequest) { r.Spec.Env = map[string]string{"A=B": "x"} }, "spec.env.A=B"},
		{"env key empty", func(r *protocol.InstanceRequest) { r.Spec.Env = map[string]string{"": "x"} }, "spec.env."},
		{"env key too long", func(r *protocol.InstanceRequest) { r.Spec.Env = map[string]string{strings.Repeat("A", 257): "x"} }, "spec.env." + strings.Repeat("A", 257)},
		{"env key lower case ok", func(r *protocol.InstanceRequest) { r.Spec.Env = map[string]string{"_lower_1": "x"} }, ""},
		{"env reserved PORT", func(r *protocol.InstanceRequest) { r.Spec.Env = map[string]string{"PORT": "80"} }, "spec.env.PORT"},
		{"env reserved PORT_", func(r *protocol.InstanceRequest) { r.Spec.Env = map[string]string{"PORT_HTTP": "80"} }, "spec.env.PORT_HTTP"},
		{"env reserved DROVER_", func(r *protocol.InstanceRequest) { r.Spec.Env = map[string]string{"DROVER_TENANT": "x"} }, "spec.env.DROVER_TENANT"},
		{"env PORTS is not reserved", func(r *protocol.InstanceRequest) { r.Spec.Env = map[string]string{"PORTS": "x"} }, ""},
		{"env value NUL", func(r *protocol.InstanceRequest) { r.Spec.Env = map[string]string{"A": "a\x00"} }, "spec.env.A"},
		{"env value too long", func(r *protocol.InstanceRequest) {
			r.Spec.Env = map[string]string{"A": strings.Repeat("x", protocol.MaxEnvValueBytes+1)}
		}, "spec.env.A"},
		{"env value at limit", func(r *protocol.InstanceRequest) {
			r.Spec.Env = map[string]string{"A": strings.Repeat("x", protocol.MaxEnvValueBytes)}
		}, ""},
		{"env too many", func(r *protocol.InstanceRequest) { r.Spec.Env = manyEnv(protocol.MaxEnvVars + 1); r.Spec.Secrets = nil }, "spec.env"},
		{"env at limit", func(r *protocol.InstanceRequest) { r.Spec.Env = manyEnv(protocol.MaxEnvVars); r.Spec.Secrets = nil }, ""},

		// secrets
		{"secret key invalid", func(r *protocol.InstanceRequest) { r.Spec.Secrets = map[string]string{"DB PASS": "x"} }, "spec.secrets.DB PASS"},
		{"secret reserved", func(r *protocol.InstanceRequest) { r.Spec.Secrets = map[string]string{"DROVER_X": "x"} }, "spec.secrets.DROVER_X"},
		{"secret value NUL", func(r *protocol.InstanceRequest) { r.Spec.Secrets = map[string]string{"S": "\x00"} }, "spec.secrets.S"},
		{"secret also in env", func(r *protocol.InstanceRequest) { r.Spec.Secrets = map[string]string{"LOG_LEVEL": "x"} }, "spec.secrets.LOG_LEVEL"},
		{"secrets too many", func(r *protocol.InstanceRequest) { r.Spec.Secrets = manyEnv(protocol.MaxEnvVars + 1); r.Spec.Env = nil }, "spec.secrets"},

		// ports
		{"port name upper case", func(r *protocol.InstanceRequest) { r.Spec.Ports = []string{"http", "Admin"} }, "spec.ports[1]"},
		{"port name starts with digit", func(r *protocol.InstanceRequest) { r.Spec.Ports = []string{"8080"} }, "spec.ports[0]"},
		{"port name empty", func(r *protocol.InstanceRequest) { r.Spec.Ports = []string{""} }, "spec.ports[0]"},
		{"port name 32 chars", func(r *protocol.InstanceRequest) { r.Spec.Ports = []string{"p" + strings.Repeat("a", 31)} }, "spec.ports[0]"},
		{"port name 31 chars", func(r *protocol.InstanceRequest) { r.Spec.Ports = []string{"http", "p" + strings.Repeat("a", 30)} }, ""},
		{"port name duplicate", func(r *protocol.InstanceRequest) { r.Spec.Ports = []string{"http", "admin", "http"} }, "spec.ports[2]"},
		{"ports too many", func(r *protocol.InstanceRequest) {
			r.Spec.Ports = nil
			for i := 0; i <= protocol.MaxPorts; i++ {
				r.Spec.Ports = append(r.Spec.Ports, fmt.Sprintf("p%d", i))
			}
			r.Spec.Health = nil
		}, "spec.ports"},
		{"no ports and no check", func(r *protocol.InstanceRequest) { r.Spec.Ports = nil; r.Spec.Health = nil }, ""},

		// resources
		{"cpu negative", func(r *protocol.InstanceRequest) { r.Spec.Resources.CPUMillis = -1 }, "spec.resources.cpu_millis"},
		{"cpu over max", func(r *protocol.InstanceRequest) { r.Spec.Resources.CPUMillis = protocol.MaxCPUMillis + 1 }, "spec.resources.cpu_millis"},
		{"cpu at max", func(r *protocol.InstanceRequest) { r.Spec.Resources.CPUMillis = protocol.MaxCPUMillis }, ""},
		{"memory negative", func(r *protocol.InstanceRequest) { r.Spec.Resources.MemoryMB = -1 }, "spec.resources.memory_mb"},
		{"memory over max", func(r *protocol.InstanceRequest) { r.Spec.Resources.MemoryMB = protocol.MaxMemoryMB + 1 }, "spec.resources.memory_mb"},

		// health checks
		{"health type missing", func(r *protocol.InstanceRequest) { r.Spec.Health.Type = "" }, "spec.health.type"},
		{"health type unknown", func(r *protocol.InstanceRequest) { r.Spec.Health.Type = "grpc" }, "spec.health.type"},
		{"health http without port", func(r *protocol.InstanceRequest) { r.Spec.Health.Port = "" }, "spec.health.port"},
		{"health http unknown port", func(r *protocol.InstanceRequest) { r.Spec.Health.Port = "metrics" }, "spec.health.port"},
		{"health tcp unknown port", func(r *protocol.InstanceRequest) { r.Spec.Health.Type = "tcp"; r.Spec.Health.Port = "x" }, "spec.health.port"},
		{"health tcp", func(r *protocol.InstanceRequest) { r.Spec.Health.Type = "tcp"; r.Spec.Health.Path = "" }, ""},
		{"health path relative", func(r *protocol.InstanceRequest) { r.Spec.Health.Path = "healthz" }, "spec.health.path"},
		{"health path empty", func(r *protocol.InstanceRequest) { r.Spec.Health.Path = "" }, ""},
		{"health path too long", func(r *protocol.InstanceRequest) { r.Spec.Health.Path = "/" + strings.Repeat("a", 1024) }, "spec.health.path"},
		{"health exec without command", func(r *protocol.InstanceRequest) { r.Spec.Health = &protocol.HealthCheck{Type: "exec"} }, "spec.health.command"},
		{"health exec NUL", func(r *protocol.InstanceRequest) {
			r.Spec.Health = &protocol.HealthCheck{Type: "exec", Command: []string{"check", "\x00"}}
		}, "spec.health.command[1]"},
		{"health exec", func(r *protocol.InstanceRequest) {
			r.Spec.Health = &protocol.HealthCheck{Type: "exec", Command: []string{"/bin/check"}}
		}, ""},
		{"health none", func(r *protocol.InstanceRequest) { r.Spec.Health = &protocol.HealthCheck{Type: "none"} }, ""},
		{"health interval below minimum", func(r *protocol.InstanceRequest) { r.Spec.Health.Interval = protocol.Duration(99 * time.Millisecond) }, "spec.health.interval"},
		{"health interval at minimum", func(r *protocol.InstanceRequest) {
			r.Spec.Health.Interval = protocol.Duration(protocol.MinCheckInterval)
		}, ""},
		{"health interval negative", func(r *protocol.InstanceRequest) { r.Spec.Health.Interval = -1 }, "spec.health.interval"},
		{"health interval over a day", func(r *protocol.InstanceRequest) { r.Spec.Health.Interval = protocol.Duration(25 * time.Hour) }, "spec.health.interval"},
		{"health timeout below minimum", func(r *protocol.InstanceRequest) { r.Spec.Health.Timeout = protocol.Duration(time.Millisecond) }, "spec.health.timeout"},
		{"health grace zero", func(r *protocol.InstanceRequest) { r.Spec.Health.Grace = 0 }, ""},
		{"health grace tiny", func(r *protocol.InstanceRequest) { r.Spec.Health.Grace = protocol.Duration(time.Millisecond) }, ""},
		{"health grace negative", func(r *protocol.InstanceRequest) { r.Spec.Health.Grace = protocol.Duration(-time.Second) }, "spec.health.grace"},
		{"health grace over a day", func(r *protocol.InstanceRequest) { r.Spec.Health.Grace = protocol.Duration(protocol.MaxDuration + 1) }, "spec.health.grace"},
		{"healthy threshold negative", func(r *protocol.InstanceRequest) { r.Spec.Health.HealthyThreshold = -1 }, "spec.health.healthy_threshold"},
		{"healthy threshold over max", func(r *protocol.InstanceRequest) { r.Spec.Health.HealthyThreshold = protocol.MaxThreshold + 1 }, "spec.health.healthy_threshold"},
		{"unhealthy threshold over max", func(r *protocol.InstanceRequest) { r.Spec.Health.UnhealthyThreshold = protocol.MaxThreshold + 1 }, "spec.health.unhealthy_threshold"},
		{"unhealthy threshold at max", func(r *protocol.InstanceRequest) { r.Spec.Health.UnhealthyThreshold = protocol.MaxThreshold }, ""},

		// restart
		{"restart policy unknown", func(r *protocol.InstanceRequest) { r.Spec.Restart.Policy = "sometimes" }, "spec.restart.policy"},
		{"restart on-failure", func(r *protocol.InstanceRequest) { r.Spec.Restart.Policy = "on-failure" }, ""},
		{"restart never", func(r *protocol.InstanceRequest) { r.Spec.Restart.Policy = "never" }, ""},
		{"restart attempts negative", func(r *protocol.InstanceRequest) { r.Spec.Restart.MaxAttempts = -1 }, "spec.restart.max_attempts"},
		{"restart attempts over max", func(r *protocol.InstanceRequest) { r.Spec.Restart.MaxAttempts = protocol.MaxRestartAttempts + 1 }, "spec.restart.max_attempts"},
		{"restart window negative", func(r *protocol.InstanceRequest) { r.Spec.Restart.Window = -1 }, "spec.restart.window"},
		{"restart delay over a day", func(r *protocol.InstanceRequest) { r.Spec.Restart.Delay = protocol.Duration(48 * time.Hour) }, "spec.restart.delay"},

		// update
		{"update max_parallel negative", func(r *protocol.InstanceRequest) { r.Spec.Update.MaxParallel = -1 }, "spec.update.max_parallel"},
		{"update max_parallel over max", func(r *protocol.InstanceRequest) { r.Spec.Update.MaxParallel = protocol.MaxReplicas + 1 }, "spec.update.max_parallel"},
		{"update canaries negative", func(r *protocol.InstanceRequest) { r.Spec.Update.Canaries = -1 }, "spec.update.canaries"},
		{"update canaries over max", func(r *protocol.InstanceRequest) { r.Spec.Update.Canaries = protocol.MaxReplicas + 1 }, "spec.update.canaries"},
		{"update min_healthy_time negative", func(r *protocol.InstanceRequest) { r.Spec.Update.MinHealthyTime = -1 }, "spec.update.min_healthy_time"},
		{"update healthy_deadline over a day", func(r *protocol.InstanceRequest) { r.Spec.Update.HealthyDeadline = protocol.Duration(25 * time.Hour) }, "spec.update.healthy_deadline"},

		// stop
		{"stop signal unknown", func(r *protocol.InstanceRequest) { r.Spec.Stop.Signal = "SIGSEGV" }, "spec.stop.signal"},
		{"stop signal without SIG", func(r *protocol.InstanceRequest) { r.Spec.Stop.Signal = "TERM" }, "spec.stop.signal"},
		{"stop signal lower case", func(r *protocol.InstanceRequest) { r.Spec.Stop.Signal = "sigterm" }, "spec.stop.signal"},
		{"stop signal SIGQUIT", func(r *protocol.InstanceRequest) { r.Spec.Stop.Signal = "SIGQUIT" }, ""},
		{"stop signal SIGKILL", func(r *protocol.InstanceRequest) { r.Spec.Stop.Signal = "SIGKILL" }, ""},
		{"stop timeout negative", func(r *protocol.InstanceRequest) { r.Spec.Stop.Timeout = -1 }, "spec.stop.timeout"},
		{"stop timeout over a day", func(r *protocol.InstanceRequest) { r.Spec.Stop.Timeout = protocol.Duration(25 * time.Hour) }, "spec.stop.timeout"},

		// constraints and labels
		{"region bad", func(r *protocol.InstanceRequest) { r.Spec.Constraints.Region = "EU West" }, "spec.constraints.region"},
		{"label key bad", func(r *protocol.InstanceRequest) { r.Spec.Constraints.Labels = map[string]string{"-x": "y"} }, "spec.constraints.labels.-x"},
		{"label key with space", func(r *protocol.InstanceRequest) { r.Spec.Constraints.Labels = map[string]string{"a b": "y"} }, "spec.constraints.labels.a b"},
		{"label key with slash and dot", func(r *protocol.InstanceRequest) {
			r.Spec.Constraints.Labels = map[string]string{"drover.dev/tier": "gold", "A_b-c": ""}
		}, ""},
		{"label key too long", func(r *protocol.InstanceRequest) {
			r.Spec.Constraints.Labels = map[string]string{strings.Repeat("k", protocol.MaxLabelKeyBytes+1): "y"}
		}, "spec.constraints.labels." + strings.Repeat("k", protocol.MaxLabelKeyBytes+1)},
		{"label value too long", func(r *protocol.InstanceRequest) {
			r.Spec.Constraints.Labels = map[string]string{"k": strings.Repeat("v", protocol.MaxLabelValueBytes+1)}
		}, "spec.constraints.labels.k"},
		{"label value newline", func(r *protocol.InstanceRequest) { r.Spec.Constraints.Labels = map[string]string{"k": "a\nb"} }, "spec.constraints.labels.k"},
		{"label value NUL", func(r *protocol.InstanceRequest) { r.Spec.Constraints.Labels = map[string]string{"k": "\x00"} }, "spec.constraints.labels.k"},
		{"labels too many", func(r *protocol.InstanceRequest) { r.Spec.Constraints.Labels = manyLabels(protocol.MaxLabels + 1) }, "spec.constraints.labels"},
		{"labels at limit", func(r *protocol.InstanceRequest) { r.Spec.Constraints.Labels = manyLabels(protocol.MaxLabels) }, ""},

		// user
		{"user with colon", func(r *protocol.InstanceRequest) { r.Spec.User = "a:b" }, "spec.user"},
		{"user with slash", func(r *protocol.InstanceRequest) { r.Spec.User = "../root" }, "spec.user"},
		{"user too long", func(r *protocol.InstanceRequest) { r.Spec.User = strings.Repeat("u", 65) }, "spec.user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := validRequest()
			tc.edit(&r)
			wantField(t, r.Validate(), tc.field)
		})
	}
}

func TestTenantValidate(t *testing.T) {
	cases := []struct {
		name   string
		tenant protocol.Tenant
		field  string
	}{
		{"valid", protocol.Tenant{Name: "acme", State: "active", Labels: map[string]string{"tier": "gold"}, Quotas: protocol.Quotas{Instances: 3, Replicas: 10, CPUMillis: 4000, MemoryMB: 8192}}, ""},
		{"state empty", protocol.Tenant{Name: "acme"}, ""},
		{"suspended", protocol.Tenant{Name: "acme", State: "suspended"}, ""},
		{"state unknown", protocol.Tenant{Name: "acme", State: "deleted"}, "state"},
		{"name missing", protocol.Tenant{}, "name"},
		{"name bad", protocol.Tenant{Name: "Acme Inc"}, "name"},
		{"label bad", protocol.Tenant{Name: "acme", Labels: map[string]string{"": "x"}}, "labels."},
		{"labels too many", protocol.Tenant{Name: "acme", Labels: manyLabels(protocol.MaxLabels + 1)}, "labels"},
		{"quota instances negative", protocol.Tenant{Name: "acme", Quotas: protocol.Quotas{Instances: -1}}, "quotas.instances"},
		{"quota replicas negative", protocol.Tenant{Name: "acme", Quotas: protocol.Quotas{Replicas: -1}}, "quotas.replicas"},
		{"quota cpu negative", protocol.Tenant{Name: "acme", Quotas: protocol.Quotas{CPUMillis: -1}}, "quotas.cpu_millis"},
		{"quota memory negative", protocol.Tenant{Name: "acme", Quotas: protocol.Quotas{MemoryMB: -1}}, "quotas.memory_mb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantField(t, tc.tenant.Validate(), tc.field)
		})
	}
}

func TestValidateReplicasAndName(t *testing.T) {
	for _, n := range []int{-1000, -1, 1001, 1 << 30} {
		wantField(t, protocol.ValidateReplicas("x.replicas", n), "x.replicas")
	}
	for _, n := range []int{0, 1, 999, 1000} {
		wantField(t, protocol.ValidateReplicas("x.replicas", n), "")
	}
	for _, name := range []string{"", " ", "a ", "é", "a.b", "A", "a\n", strings.Repeat("a", 64)} {
		wantField(t, protocol.ValidateName("tenant", name), "tenant")
	}
}

func TestWithDefaults(t *testing.T) {
	got := protocol.Spec{Command: []string{"x"}}.WithDefaults()
	drain := protocol.Duration(protocol.DefaultStopDrain)
	want := protocol.Spec{
		Command: []string{"x"},
		Health:  &protocol.HealthCheck{Type: protocol.HealthNone},
		Restart: protocol.RestartPolicy{Policy: "always", MaxAttempts: protocol.DefaultRestartAttempts,
			Window: protocol.Duration(protocol.DefaultRestartWindow), Delay: protocol.Duration(protocol.DefaultRestartDelay)},
		Update: protocol.UpdateStrategy{MaxParallel: protocol.DefaultMaxParallel,
			MinHealthyTime: protocol.Duration(protocol.DefaultMinHealthyTime), HealthyDeadline: protocol.Duration(protocol.DefaultHealthyDeadline)},
		Stop: protocol.StopPolicy{Signal: "SIGTERM", Timeout: protocol.Duration(protocol.DefaultStopTimeout), Drain: &drain},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("defaults of an empty spec:\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate("spec"); err != nil {
		t.Fatalf("a spec with defaults is invalid: %v", err)
	}

	// An HTTP check gets its interval, timeout, thresholds and path.
	in := protocol.Spec{Command: []string{"x"}, Ports: []string{"http"}, Health: &protocol.HealthCheck{Type: "http", Port: "http"}}
	d := in.WithDefaults()
	wantH := protocol.HealthCheck{Type: "http", Port: "http", Path: "/", Interval: protocol.Duration(protocol.DefaultCheckInterval),
		Timeout: protocol.Duration(protocol.DefaultCheckTimeout), HealthyThreshold: 1, UnhealthyThreshold: 3}
	if !reflect.DeepEqual(*d.Health, wantH) {
		t.Fatalf("http check defaults: got %+v want %+v", *d.Health, wantH)
	}
	if in.Health.Path != "" || in.Health.Interval != 0 {
		t.Fatalf("WithDefaults changed the caller's health check: %+v", *in.Health)
	}
	// A TCP check gets no path.
	tcp := protocol.Spec{Command: []string{"x"}, Ports: []string{"p"}, Health: &protocol.HealthCheck{Type: "tcp", Port: "p"}}.WithDefaults()
	if tcp.Health.Path != "" {
		t.Fatalf("tcp check got a path %q", tcp.Health.Path)
	}

	// Values that are set are kept.
	full := validRequest().Spec
	if kept := full.WithDefaults(); !reflect.DeepEqual(kept, full) {
		t.Fatalf("WithDefaults changed a full spec:\n got %+v\nwant %+v", kept, full)
	}
}

func TestRedacted(t *testing.T) {
	s := validRequest().Spec
	s.Secrets = map[string]string{"DB_PASSWORD": "hunter2", "API_KEY": "k"}
	r := s.Redacted()
	if len(r.Secrets) != 2 {
		t.Fatalf("redacted secrets lost keys: %v", r.Secrets)
	}
	b, _ := json.Marshal(r)
	for _, v := range []string{"hunter2", `"k"`} {
		if strings.Contains(string(b), v) {
			t.Fatalf("redacted spec shows secret value %s: %s", v, b)
		}
	}
	for _, k := range []string{"DB_PASSWORD", "API_KEY"} {
		if !strings.Contains(string(b), k) {
			t.Fatalf("redacted spec hides secret key %s: %s", k, b)
		}
	}
	if s.Secrets["DB_PASSWORD"] != "hunter2" {
		t.Fatal("Redacted changed the original's secrets")
	}
	if r.Env["LOG_LEVEL"] != "info" {
		t.Fatal("Redacted changed env")
	}
	none := protocol.Spec{Command: []string{"x"}}
	if got := none.Redacted(); got.Secrets != nil {
		t.Fatalf("spec without secrets got %v", got.Secrets)
	}
}

func TestSplitInstanceID(t *testing.T) {
	cases := []struct {
		id, tenant, name, field string
	}{
		{"acme/crm", "acme", "crm", ""},
		{"acme", "", "", "instance"},
		{"", "", "", "instance"},
		{"/crm", "", "", "tenant"},
		{"acme/", "", "", "name"},
		{"Acme/crm", "", "", "tenant"},
		{"acme/crm/x", "", "", "name"},
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			tenant, name, err := protocol.SplitInstanceID(tc.id)
			wantField(t, err, tc.field)
			if tenant != tc.tenant || name != tc.name {
				t.Fatalf("got %q %q, want %q %q", tenant, name, tc.tenant, tc.name)
			}
			if err == nil && protocol.InstanceID(tenant, name) != tc.id {
				t.Fatalf("InstanceID(%q, %q) = %q", tenant, name, protocol.InstanceID(tenant, name))
			}
		})
	}
}

// The traffic parts of an instance request: its custom domains, the port
// its route names and its stop.drain.
func TestInstanceRequestValidateTraffic(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	cases := []struct {
		name  string
		edit  func(r *protocol.InstanceRequest)
		field string // "" means valid
	}{
		// domains
		{"domains", func(r *protocol.InstanceRequest) { r.Domains = []string{"crm.example.com", "www.crm-1.example.com"} }, ""},
		{"domain of two labels", func(r *protocol.InstanceRequest) { r.Domains = []string{"example.com"} }, ""},
		{"domain upper case", func(r *protocol.InstanceRequest) { r.Domains = []string{"Crm.example.com"} }, "domains[0]"},
		{"domain of one label", func(r *protocol.InstanceRequest) { r.Domains = []string{"crm.example.com", "localhost"} }, "domains[1]"},
		{"domain empty", func(r *protocol.InstanceRequest) { r.Domains = []string{""} }, "domains[0]"},
		{"domain trailing dot", func(r *protocol.InstanceRequest) { r.Domains = []string{"crm.example.com."} }, "domains[0]"},
		{"domain empty label", func(r *protocol.InstanceRequest) { r.Domains = []string{"crm..example.com"} }, "domains[0]"},
		{"domain underscore", func(r *protocol.InstanceRequest) { r.Domains = []string{"c_rm.example.com"} }, "domains[0]"},
		{"domain label leading dash", func(r *protocol.InstanceRequest) { r.Domains = []string{"-crm.example.com"} }, "domains[0]"},
		{"domain with port", func(r *protocol.InstanceRequest) { r.Domains = []string{"crm.example.com:8080"} }, "domains[0]"},
		{"domain wildcard", func(r *protocol.InstanceRequest) { r.Domains = []string{"*.example.com"} }, "domains[0]"},
		{"domain label of 63", func(r *protocol.InstanceRequest) { r.Domains = []string{label63 + ".com"} }, ""},
		{"domain label of 64", func(r *protocol.InstanceRequest) { r.Domains = []string{label63 + "a.com"} }, "domains[0]"},
		{"domain over 253", func(r *protocol.InstanceRequest) {
			r.Domains = []string{strings.Repeat(label63+".", 4) + "com"} // 4*64+3 = 259
		}, "domains[0]"},
		{"domain named twice", func(r *protocol.InstanceRequest) {
			r.Domains = []string{"a.example.com", "b.example.com", "a.example.com"}
		}, "domains[2]"},
		{"domain an IP address", func(r *protocol.InstanceRequest) { r.Domains = []string{"crm.example.com", "10.0.0.1"} }, "domains[1]"},
		{"domain with a numeric label", func(r *protocol.InstanceRequest) { r.Domains = []string{"10.example.com"} }, ""},
		{"16 domains", func(r *protocol.InstanceRequest) { r.Domains = manyDomains(16) }, ""},
		{"17 domains", func(r *protocol.InstanceRequest) { r.Domains = manyDomains(17) }, "domains"},

		// route.port names one of spec.ports
		{"route port", func(r *protocol.InstanceRequest) { r.Spec.Route = &protocol.RouteSpec{Port: "admin"} }, ""},
		{"route without port", func(r *protocol.InstanceRequest) { r.Spec.Route = &protocol.RouteSpec{} }, ""},
		{"route port unknown", func(r *protocol.InstanceRequest) { r.Spec.Route = &protocol.RouteSpec{Port: "metrics"} }, "spec.route.port"},
		{"route port without ports", func(r *protocol.InstanceRequest) {
			r.Spec.Ports, r.Spec.Health = nil, nil
			r.Spec.Route = &protocol.RouteSpec{Port: "http"}
		}, "spec.route.port"},

		// stop.drain 0s..10m
		{"drain zero", func(r *protocol.InstanceRequest) { r.Spec.Stop.Drain = ptr(protocol.Duration(0)) }, ""},
		{"drain absent", func(r *protocol.InstanceRequest) { r.Spec.Stop.Drain = nil }, ""},
		{"drain 10m", func(r *protocol.InstanceRequest) { r.Spec.Stop.Drain = ptr(protocol.Duration(10 * time.Minute)) }, ""},
		{"drain over 10m", func(r *protocol.InstanceRequest) { r.Spec.Stop.Drain = ptr(protocol.Duration(10*time.Minute + 1)) }, "spec.stop.drain"},
		{"drain negative", func(r *protocol.InstanceRequest) { r.Spec.Stop.Drain = ptr(protocol.Duration(-time.Second)) }, "spec.stop.drain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := validRequest()
			tc.edit(&r)
			wantField(t, r.Validate(), tc.field)
		})
	}
}

func manyDomains(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("d%d.example.com", i)
	}
	return out
}

// stop.drain defaults to 5s; an explicit 0s (no drain) is kept, through
// the JSON that carries specs in requests and Raft entries as well.
func TestDrainDefault(t *testing.T) {
	if d := (protocol.Spec{Command: []string{"x"}}).WithDefaults().Stop.Drain; d == nil || d.D() != 5*time.Second {
		t.Fatalf("default drain %v, want 5s", d)
	}
	for _, tc := range []struct {
		body string
		want time.Duration
	}{
		{`{"command":["x"],"stop":{"drain":"0s"}}`, 0},
		{`{"command":["x"],"stop":{"drain":"30s"}}`, 30 * time.Second},
		{`{"command":["x"],"stop":{}}`, 5 * time.Second},
		{`{"command":["x"],"stop":{"drain":null}}`, 5 * time.Second},
	} {
		var s protocol.Spec
		if err := json.Unmarshal([]byte(tc.body), &s); err != nil {
			t.Fatal(err)
		}
		s = s.WithDefaults()
		// As stored: encoded and decoded again.
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var stored protocol.Spec
		if err := json.Unmarshal(b, &stored); err != nil {
			t.Fatal(err)
		}
		for what, d := range map[string]*protocol.Duration{"with defaults": s.Stop.Drain, "stored": stored.Stop.Drain} {
			if d == nil || d.D() != tc.want {
				t.Errorf("%s %s: drain %v, want %s", tc.body, what, d, tc.want)
			}
		}
		if err := stored.Validate("spec"); err != nil {
			t.Errorf("%s: %v", tc.body, err)
		}
	}
}

// A hello's address, when set, is an IP address.
func TestHelloAddressValidate(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"10.1.2.3", true},
		{"2001:db8::7", true},
		{"::1", true},
		{"host.example.com", false},
		{"10.1.2.3:4000", false},
		{"10.1.2", false},
		{"[::1]", false},
		{" 10.1.2.3", false},
	} {
		h := protocol.Hello{ProtocolVersion: protocol.AgentProtocolVersion, Name: "web-1",
			PortRange: protocol.PortRange{Lo: 20000, Hi: 20100}, Address: tc.addr}
		err := h.Validate()
		if tc.ok {
			wantField(t, err, "")
		} else {
			wantField(t, err, "address")
		}
	}
}
