package protocol

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Limits on sizes and counts. They are part of the contract: input past them
// is refused with invalid_argument naming the field.
const (
	MaxBodyBytes       = 1 << 20 // bodies of API requests
	MaxReplicas        = 1000
	MaxArgs            = 256
	MaxArgBytes        = 4096
	MaxEnvVars         = 256
	MaxEnvValueBytes   = 32 << 10
	MaxPorts           = 16
	MaxLabels          = 64
	MaxLabelKeyBytes   = 63
	MaxLabelValueBytes = 255
	MaxCPUMillis       = 1_000_000
	MaxMemoryMB        = 4 << 20 // 4 TiB
	MaxVersionBytes    = 128
	MaxDuration        = 24 * time.Hour
	MinCheckInterval   = 100 * time.Millisecond
	MaxThreshold       = 100
	MaxRestartAttempts = 1000
)

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envKeyRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	portNameRE = regexp.MustCompile(`^[a-z]([a-z0-9_-]{0,30})$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$`)
)

// Signals a stop policy may name.
var stopSignals = map[string]bool{
	"SIGTERM": true, "SIGINT": true, "SIGQUIT": true, "SIGHUP": true,
	"SIGUSR1": true, "SIGUSR2": true, "SIGKILL": true,
}

// ValidateName checks a tenant, instance, environment or plan name.
func ValidateName(field, name string) error {
	if name == "" {
		return FieldError(field, "is required")
	}
	if !nameRE.MatchString(name) {
		return FieldError(field, "%q is not a valid name: lower-case letters, digits and '-', 1 to 63 characters, starting and ending with a letter or digit", name)
	}
	return nil
}

// ValidateReplicas checks a replica count.
func ValidateReplicas(field string, n int) error {
	if n < 0 || n > MaxReplicas {
		return FieldError(field, "must be between 0 and %d, got %d", MaxReplicas, n)
	}
	return nil
}

// ValidateLabels checks a label map.
func ValidateLabels(field string, labels map[string]string) error {
	if len(labels) > MaxLabels {
		return FieldError(field, "at most %d labels, got %d", MaxLabels, len(labels))
	}
	for k, v := range labels {
		if len(k) > MaxLabelKeyBytes || !labelKeyRE.MatchString(k) {
			return FieldError(field+"."+k, "invalid label key: letters, digits, '.', '_', '/', '-', at most %d characters", MaxLabelKeyBytes)
		}
		if len(v) > MaxLabelValueBytes || strings.ContainsAny(v, "\x00\n") {
			return FieldError(field+"."+k, "label value too long (max %d) or holds a NUL or newline", MaxLabelValueBytes)
		}
	}
	return nil
}

// Validate checks a tenant as created or patched.
func (t *Tenant) Validate() error {
	if err := ValidateName("name", t.Name); err != nil {
		return err
	}
	if t.State != "" && t.State != TenantActive && t.State != TenantSuspended {
		return FieldError("state", "must be %q or %q", TenantActive, TenantSuspended)
	}
	if err := ValidateLabels("labels", t.Labels); err != nil {
		return err
	}
	if t.Region != "" {
		if err := ValidateName("region", t.Region); err != nil {
			return err
		}
	}
	if t.MaintenanceWindow != nil {
		if err := t.MaintenanceWindow.Validate("maintenance_window"); err != nil {
			return err
		}
	}
	return t.Quotas.Validate("quotas")
}

// Validate checks quotas: none negative, none past the global limits.
func (q *Quotas) Validate(field string) error {
	switch {
	case q.Instances < 0:
		return FieldError(field+".instances", "must not be negative")
	case q.Replicas < 0:
		return FieldError(field+".replicas", "must not be negative")
	case q.CPUMillis < 0:
		return FieldError(field+".cpu_millis", "must not be negative")
	case q.MemoryMB < 0:
		return FieldError(field+".memory_mb", "must not be negative")
	}
	return nil
}

// Validate checks an instance request (create or update).
func (r *InstanceRequest) Validate() error {
	if err := ValidateName("name", r.Name); err != nil {
		return err
	}
	if r.Environment != "" {
		if err := ValidateName("environment", r.Environment); err != nil {
			return err
		}
	}
	if r.Plan != "" {
		if err := ValidateName("plan", r.Plan); err != nil {
			return err
		}
	}
	if r.Replicas != nil {
		if err := ValidateReplicas("replicas", *r.Replicas); err != nil {
			return err
		}
	}
	if err := ValidateDomains("domains", r.Domains); err != nil {
		return err
	}
	if r.Product == "" {
		switch {
		case r.Release != "":
			return FieldError("release", "is for instances of a product; name the product")
		case r.Channel != "":
			return FieldError("channel", "is for instances of a product; name the product")
		case r.Pinned != nil:
			return FieldError("pinned", "is for instances of a product; name the product")
		case len(r.Parameters) > 0:
			return FieldError("parameters", "are for instances of a product; name the product")
		}
		return r.Spec.Validate("spec")
	}
	if err := ValidateName("product", r.Product); err != nil {
		return err
	}
	if r.Release != "" && r.Channel != "" {
		return FieldError("release", "name a release or a channel, not both")
	}
	if r.Release != "" {
		if _, err := ParseVersion("release", r.Release); err != nil {
			return err
		}
	}
	if r.Channel != "" {
		if err := ValidateName("channel", r.Channel); err != nil {
			return err
		}
	}
	if len(r.Parameters) > MaxParameters {
		return FieldError("parameters", "at most %d", MaxParameters)
	}
	if !r.Spec.IsZero() {
		return FieldError("spec", "an instance of a product takes no spec: the product and its release make it")
	}
	return nil
}

// IsZero reports whether nothing of the spec is set.
func (s *Spec) IsZero() bool {
	return s.Version == "" && len(s.Command) == 0 && len(s.Env) == 0 && len(s.Secrets) == 0 && len(s.Ports) == 0 &&
		s.Resources == (Resources{}) && s.Health == nil && s.Restart == (RestartPolicy{}) &&
		s.Update == (UpdateStrategy{}) && s.Stop == (StopPolicy{}) && s.Route == nil && s.Constraints.Region == "" &&
		len(s.Constraints.Labels) == 0 && s.User == ""
}

// Validate checks a spec; field is the prefix of the field names in errors.
func (s *Spec) Validate(field string) error {
	f := func(name string) string { return field + "." + name }
	if len(s.Version) > MaxVersionBytes {
		return FieldError(f("version"), "at most %d bytes", MaxVersionBytes)
	}
	if err := validateArgv(f("command"), s.Command); err != nil {
		return err
	}
	if err := validateEnv(f("env"), s.Env); err != nil {
		return err
	}
	if err := validateEnv(f("secrets"), s.Secrets); err != nil {
		return err
	}
	for k := range s.Secrets {
		if _, dup := s.Env[k]; dup {
			return FieldError(f("secrets."+k), "is also set in env")
		}
	}
	if len(s.Ports) > MaxPorts {
		return FieldError(f("ports"), "at most %d ports, got %d", MaxPorts, len(s.Ports))
	}
	seen := map[string]bool{}
	for i, p := range s.Ports {
		if !portNameRE.MatchString(p) {
			return FieldError(fmt.Sprintf("%s[%d]", f("ports"), i), "%q is not a valid port name: a lower-case letter, then letters, digits, '_' or '-', at most 31 characters", p)
		}
		if seen[p] {
			return FieldError(fmt.Sprintf("%s[%d]", f("ports"), i), "port %q named twice", p)
		}
		seen[p] = true
	}
	if err := s.Resources.Validate(f("resources")); err != nil {
		return err
	}
	if s.Health != nil {
		if err := s.Health.Validate(f("health"), seen); err != nil {
			return err
		}
	}
	if err := s.Restart.Validate(f("restart")); err != nil {
		return err
	}
	if err := s.Update.Validate(f("update")); err != nil {
		return err
	}
	if err := s.Stop.Validate(f("stop")); err != nil {
		return err
	}
	if s.Route != nil && s.Route.Port != "" && !seen[s.Route.Port] {
		return FieldError(f("route.port"), "%q is not one of spec.ports", s.Route.Port)
	}
	if s.Constraints.Region != "" {
		if err := ValidateName(f("constraints.region"), s.Constraints.Region); err != nil {
			return err
		}
	}
	if err := ValidateLabels(f("constraints.labels"), s.Constraints.Labels); err != nil {
		return err
	}
	if len(s.User) > 64 || strings.ContainsAny(s.User, "\x00:/ ") {
		return FieldError(f("user"), "not a valid user name")
	}
	return nil
}

func validateArgv(field string, argv []string) error {
	if len(argv) == 0 {
		return FieldError(field, "is required: the program and its arguments as a list")
	}
	if len(argv) > MaxArgs {
		return FieldError(field, "at most %d arguments, got %d", MaxArgs, len(argv))
	}
	if argv[0] == "" {
		return FieldError(field+"[0]", "the program must not be empty")
	}
	for i, a := range argv {
		if len(a) > MaxArgBytes {
			return FieldError(fmt.Sprintf("%s[%d]", field, i), "at most %d bytes", MaxArgBytes)
		}
		if strings.IndexByte(a, 0) >= 0 {
			return FieldError(fmt.Sprintf("%s[%d]", field, i), "must not contain a NUL byte")
		}
	}
	return nil
}

// reservedEnv reports whether key is set by Drover itself for every replica.
func reservedEnv(key string) bool {
	return key == "PORT" || strings.HasPrefix(key, "PORT_") || strings.HasPrefix(key, "DROVER_")
}

func validateEnv(field string, env map[string]string) error {
	if len(env) > MaxEnvVars {
		return FieldError(field, "at most %d variables, got %d", MaxEnvVars, len(env))
	}
	for k, v := range env {
		if !envKeyRE.MatchString(k) || len(k) > 256 {
			return FieldError(field+"."+k, "invalid variable name: letters, digits and '_', not starting with a digit")
		}
		if reservedEnv(k) {
			return FieldError(field+"."+k, "is reserved: Drover sets PORT, PORT_* and DROVER_* itself")
		}
		if len(v) > MaxEnvValueBytes {
			return FieldError(field+"."+k, "value at most %d bytes", MaxEnvValueBytes)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return FieldError(field+"."+k, "value must not contain a NUL byte")
		}
	}
	return nil
}

func validateDuration(field string, d Duration, min time.Duration) error {
	if d < 0 {
		return FieldError(field, "must not be negative")
	}
	if d != 0 && d.D() < min {
		return FieldError(field, "must be at least %s", min)
	}
	if d.D() > MaxDuration {
		return FieldError(field, "must be at most %s", MaxDuration)
	}
	return nil
}

func validateCount(field string, n, max int) error {
	if n < 0 || n > max {
		return FieldError(field, "must be between 0 and %d, got %d", max, n)
	}
	return nil
}

// Validate checks resources.
func (r *Resources) Validate(field string) error {
	if r.CPUMillis < 0 || r.CPUMillis > MaxCPUMillis {
		return FieldError(field+".cpu_millis", "must be between 0 and %d", MaxCPUMillis)
	}
	if r.MemoryMB < 0 || r.MemoryMB > MaxMemoryMB {
		return FieldError(field+".memory_mb", "must be between 0 and %d", MaxMemoryMB)
	}
	return nil
}

// Validate checks a health check; ports are the spec's named ports.
func (h *HealthCheck) Validate(field string, ports map[string]bool) error {
	switch h.Type {
	case HealthHTTP, HealthTCP:
		if h.Port == "" {
			return FieldError(field+".port", "is required for a %s check", h.Type)
		}
		if !ports[h.Port] {
			return FieldError(field+".port", "%q is not one of the spec's ports", h.Port)
		}
		if h.Type == HealthHTTP && h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			return FieldError(field+".path", "must start with '/'")
		}
		if len(h.Path) > 1024 {
			return FieldError(field+".path", "at most 1024 bytes")
		}
	case HealthExec:
		if err := validateArgv(field+".command", h.Command); err != nil {
			return err
		}
	case HealthNone:
	case "":
		return FieldError(field+".type", "is required: http, tcp, exec or none")
	default:
		return FieldError(field+".type", "%q is not a check type: http, tcp, exec or none", h.Type)
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"grace", h.Grace}} {
		min := MinCheckInterval
		if d.name == "grace" {
			min = 0
		}
		if err := validateDuration(field+"."+d.name, d.v, min); err != nil {
			return err
		}
	}
	if err := validateCount(field+".healthy_threshold", h.HealthyThreshold, MaxThreshold); err != nil {
		return err
	}
	return validateCount(field+".unhealthy_threshold", h.UnhealthyThreshold, MaxThreshold)
}

// Validate checks a restart policy.
func (r *RestartPolicy) Validate(field string) error {
	switch r.Policy {
	case "", RestartAlways, RestartOnFailure, RestartNever:
	default:
		return FieldError(field+".policy", "%q is not a policy: always, on-failure or never", r.Policy)
	}
	if err := validateCount(field+".max_attempts", r.MaxAttempts, MaxRestartAttempts); err != nil {
		return err
	}
	if err := validateDuration(field+".window", r.Window, 0); err != nil {
		return err
	}
	return validateDuration(field+".delay", r.Delay, 0)
}

// Validate checks an update strategy.
func (u *UpdateStrategy) Validate(field string) error {
	if err := validateCount(field+".max_parallel", u.MaxParallel, MaxReplicas); err != nil {
		return err
	}
	if err := validateCount(field+".canaries", u.Canaries, MaxReplicas); err != nil {
		return err
	}
	if err := validateDuration(field+".min_healthy_time", u.MinHealthyTime, 0); err != nil {
		return err
	}
	return validateDuration(field+".healthy_deadline", u.HealthyDeadline, 0)
}

// Validate checks a stop policy.
func (s *StopPolicy) Validate(field string) error {
	if s.Signal != "" && !stopSignals[s.Signal] {
		return FieldError(field+".signal", "%q is not a supported signal", s.Signal)
	}
	if err := validateDuration(field+".timeout", s.Timeout, 0); err != nil {
		return err
	}
	if s.Drain != nil && (*s.Drain < 0 || s.Drain.D() > MaxDrain) {
		return FieldError(field+".drain", "must be between 0s and %s", MaxDrain)
	}
	return nil
}

// Defaults of a spec's zero values, written once.
const (
	DefaultEnvironment     = "default"
	DefaultReplicas        = 1
	DefaultRestartAttempts = 5
	DefaultRestartWindow   = 5 * time.Minute
	DefaultRestartDelay    = time.Second
	DefaultMaxParallel     = 1
	DefaultMinHealthyTime  = 5 * time.Second
	DefaultHealthyDeadline = 5 * time.Minute
	DefaultStopSignal      = "SIGTERM"
	DefaultStopTimeout     = 10 * time.Second
	DefaultStopDrain       = 5 * time.Second
	DefaultCheckInterval   = 10 * time.Second
	DefaultCheckTimeout    = 2 * time.Second
)

// WithDefaults returns s with every zero value that has a default filled in,
// so that the stored spec shows what the agent will do.
func (s Spec) WithDefaults() Spec {
	if s.Restart.Policy == "" {
		s.Restart.Policy = RestartAlways
	}
	if s.Restart.MaxAttempts == 0 {
		s.Restart.MaxAttempts = DefaultRestartAttempts
	}
	if s.Restart.Window == 0 {
		s.Restart.Window = Duration(DefaultRestartWindow)
	}
	if s.Restart.Delay == 0 {
		s.Restart.Delay = Duration(DefaultRestartDelay)
	}
	if s.Update.MaxParallel == 0 {
		s.Update.MaxParallel = DefaultMaxParallel
	}
	if s.Update.MinHealthyTime == 0 {
		s.Update.MinHealthyTime = Duration(DefaultMinHealthyTime)
	}
	if s.Update.HealthyDeadline == 0 {
		s.Update.HealthyDeadline = Duration(DefaultHealthyDeadline)
	}
	if s.Stop.Signal == "" {
		s.Stop.Signal = DefaultStopSignal
	}
	if s.Stop.Timeout == 0 {
		s.Stop.Timeout = Duration(DefaultStopTimeout)
	}
	if s.Stop.Drain == nil {
		d := Duration(DefaultStopDrain)
		s.Stop.Drain = &d
	}
	if s.Health == nil {
		s.Health = &HealthCheck{Type: HealthNone}
	} else {
		h := *s.Health
		if h.Interval == 0 {
			h.Interval = Duration(DefaultCheckInterval)
		}
		if h.Timeout == 0 {
			h.Timeout = Duration(DefaultCheckTimeout)
		}
		if h.HealthyThreshold == 0 {
			h.HealthyThreshold = 1
		}
		if h.UnhealthyThreshold == 0 {
			h.UnhealthyThreshold = 3
		}
		if h.Type == HealthHTTP && h.Path == "" {
			h.Path = "/"
		}
		s.Health = &h
	}
	return s
}

// Redacted returns a copy of s whose secret values are hidden: answers show
// the keys, never the values.
func (s Spec) Redacted() Spec {
	if len(s.Secrets) == 0 {
		return s
	}
	m := make(map[string]string, len(s.Secrets))
	for k := range s.Secrets {
		m[k] = "(secret)"
	}
	s.Secrets = m
	return s
}

// InstanceID is the id of an instance: tenant/name.
func InstanceID(tenant, name string) string { return tenant + "/" + name }

// SplitInstanceID splits "tenant/name".
func SplitInstanceID(id string) (tenant, name string, err error) {
	tenant, name, ok := strings.Cut(id, "/")
	if !ok {
		return "", "", FieldError("instance", "%q is not TENANT/NAME", id)
	}
	if err := ValidateName("tenant", tenant); err != nil {
		return "", "", err
	}
	if err := ValidateName("name", name); err != nil {
		return "", "", err
	}
	return tenant, name, nil
}

// Limits of an instance's routing.
const (
	MaxDomains = 16
	MaxDrain   = 10 * time.Minute
)

// domainLabelRE is one label of a host name: lower case, as the gateways
// compare them.
var domainLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateDomains checks an instance's custom domains: at most MaxDomains
// lower-case host names of two labels or more, each named once.
func ValidateDomains(field string, domains []string) error {
	if len(domains) > MaxDomains {
		return FieldError(field, "at most %d domains, got %d", MaxDomains, len(domains))
	}
	seen := map[string]bool{}
	for i, d := range domains {
		f := fmt.Sprintf("%s[%d]", field, i)
		labels := strings.Split(d, ".")
		if len(d) > 253 || len(labels) < 2 {
			return FieldError(f, "%q is not a host name of two labels or more, at most 253 characters", Truncate(d, 64))
		}
		for _, l := range labels {
			if !domainLabelRE.MatchString(l) {
				return FieldError(f, "%q is not a lower-case host name: labels of letters, digits and '-'", Truncate(d, 64))
			}
		}
		if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
			// No top-level domain is all digits: this is an IP address,
			// which would take requests sent to the gateways by address.
			return FieldError(f, "%q is an IP address, not a host name", d)
		}
		if seen[d] {
			return FieldError(f, "%q named twice", d)
		}
		seen[d] = true
	}
	return nil
}
