package protocol

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
)

// The vendor's catalogue (API.md, "Products, releases and channels"): a
// product says how the vendor's software runs and what a customer may
// configure; releases are its versions; channels point at releases.

// Limits of the catalogue.
const (
	MaxParameters       = 64
	MaxEnumValues       = 64
	MaxParameterBytes   = 4096
	MaxDescriptionBytes = 1024
	MaxNotesBytes       = 16 << 10
	MaxChannels         = 32
	MaxProductPlans     = 32
	MaxUpgradeFromBytes = 256
	MaxWindowDays       = 7
)

// Release states.
const (
	ReleaseAvailable  = "available"
	ReleaseDeprecated = "deprecated" // no new instances
	ReleaseRecalled   = "recalled"   // no new instances; rollouts move instances off it first
)

// Parameter types.
const (
	ParamString = "string"
	ParamInt    = "int"
	ParamBool   = "bool"
)

// Product is a vendor's product: the template every instance of it runs
// with, the parameters a customer may set, the plans it is sold in.
type Product struct {
	Name           string            `json:"name"`
	Description    string            `json:"description,omitempty"`
	Template       ProductTemplate   `json:"template"`
	Parameters     []Parameter       `json:"parameters,omitempty"`
	Plans          []string          `json:"plans,omitempty"`
	DefaultChannel string            `json:"default_channel,omitempty"`
	Channels       map[string]string `json:"channels,omitempty"` // channel -> release version
	CreatedAt      time.Time         `json:"created_at"`
	CreateIndex    uint64            `json:"create_index"`
	ModifyIndex    uint64            `json:"modify_index"`
}

// ProductTemplate is the part of a spec the vendor fixes for every
// instance; the command comes from the release, resources from the plan.
type ProductTemplate struct {
	Ports       []string          `json:"ports,omitempty"`
	Health      *HealthCheck      `json:"health,omitempty"`
	Resources   Resources         `json:"resources"`
	Env         map[string]string `json:"env,omitempty"`
	Restart     RestartPolicy     `json:"restart"`
	Update      UpdateStrategy    `json:"update"`
	Stop        StopPolicy        `json:"stop"`
	Route       *RouteSpec        `json:"route,omitempty"`
	Constraints Constraints       `json:"constraints"`
}

// Parameter is a setting a customer may give an instance; it reaches the
// process as an environment variable of its name.
type Parameter struct {
	Name        string          `json:"name"`
	Type        string          `json:"type"`
	Description string          `json:"description,omitempty"`
	Default     json.RawMessage `json:"default,omitempty"`
	Enum        []string        `json:"enum,omitempty"`
	Min         *int64          `json:"min,omitempty"`
	Max         *int64          `json:"max,omitempty"`
	Required    bool            `json:"required,omitempty"`
	// Secret parameters are write-only, like spec.secrets.
	Secret bool `json:"secret,omitempty"`
}

// Release is one version of a product. Only State and Notes change after
// it is published.
type Release struct {
	Product     string            `json:"product"`
	Version     string            `json:"version"`
	Command     []string          `json:"command"`
	Env         map[string]string `json:"env,omitempty"`
	UpgradeFrom string            `json:"upgrade_from,omitempty"`
	Notes       string            `json:"notes,omitempty"`
	State       string            `json:"state"`
	CreatedAt   time.Time         `json:"created_at"`
	CreateIndex uint64            `json:"create_index"`
	ModifyIndex uint64            `json:"modify_index"`
}

// ReleasePatch changes a release's state or notes.
type ReleasePatch struct {
	State *string `json:"state,omitempty"`
	Notes *string `json:"notes,omitempty"`
}

// ChannelRequest points a channel at a release.
type ChannelRequest struct {
	Release string `json:"release"`
}

// Validate checks a product as applied.
func (p *Product) Validate() error {
	if err := ValidateName("name", p.Name); err != nil {
		return err
	}
	if len(p.Description) > MaxDescriptionBytes {
		return FieldError("description", "at most %d bytes", MaxDescriptionBytes)
	}
	if err := p.Template.Validate("template"); err != nil {
		return err
	}
	if len(p.Parameters) > MaxParameters {
		return FieldError("parameters", "at most %d, got %d", MaxParameters, len(p.Parameters))
	}
	seen := map[string]bool{}
	for i := range p.Parameters {
		f := fmt.Sprintf("parameters[%d]", i)
		prm := &p.Parameters[i]
		if err := prm.Validate(f); err != nil {
			return err
		}
		if seen[prm.Name] {
			return FieldError(f+".name", "parameter %q declared twice", prm.Name)
		}
		if _, ok := p.Template.Env[prm.Name]; ok {
			return FieldError(f+".name", "%q is also set in template.env", prm.Name)
		}
		seen[prm.Name] = true
	}
	if len(p.Plans) > MaxProductPlans {
		return FieldError("plans", "at most %d", MaxProductPlans)
	}
	for i, name := range p.Plans {
		if err := ValidateName(fmt.Sprintf("plans[%d]", i), name); err != nil {
			return err
		}
		if slices.Index(p.Plans, name) != i {
			return FieldError(fmt.Sprintf("plans[%d]", i), "plan %q named twice", name)
		}
	}
	if p.DefaultChannel != "" {
		if err := ValidateName("default_channel", p.DefaultChannel); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a template: the checks of a spec, without a command.
func (t *ProductTemplate) Validate(field string) error {
	s := t.Spec()
	s.Command = []string{"template"} // the release brings it
	return s.Validate(field)
}

// Spec is the template as the start of an instance's spec.
func (t *ProductTemplate) Spec() Spec {
	return Spec{Ports: slices.Clone(t.Ports), Health: t.Health, Resources: t.Resources, Env: cloneMap(t.Env),
		Restart: t.Restart, Update: t.Update, Stop: t.Stop, Route: t.Route, Constraints: t.Constraints}
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Validate checks a parameter's declaration, its default included.
func (p *Parameter) Validate(field string) error {
	if !envKeyRE.MatchString(p.Name) || len(p.Name) > 128 {
		return FieldError(field+".name", "%q is not an environment variable name", p.Name)
	}
	if reservedEnv(p.Name) {
		return FieldError(field+".name", "%q is set by Drover itself", p.Name)
	}
	switch p.Type {
	case ParamString, ParamInt, ParamBool:
	default:
		return FieldError(field+".type", "must be %q, %q or %q", ParamString, ParamInt, ParamBool)
	}
	if len(p.Description) > MaxDescriptionBytes {
		return FieldError(field+".description", "at most %d bytes", MaxDescriptionBytes)
	}
	if len(p.Enum) > MaxEnumValues {
		return FieldError(field+".enum", "at most %d values", MaxEnumValues)
	}
	if len(p.Enum) > 0 && p.Type == ParamBool {
		return FieldError(field+".enum", "a bool takes no enum")
	}
	if (p.Min != nil || p.Max != nil) && p.Type != ParamInt {
		return FieldError(field+".min", "min and max are for int parameters")
	}
	if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
		return FieldError(field+".min", "min %d is above max %d", *p.Min, *p.Max)
	}
	if p.Secret && len(p.Default) > 0 {
		return FieldError(field+".default", "a secret parameter takes no default")
	}
	if len(p.Default) > 0 {
		if _, err := p.Value(p.Default); err != nil {
			e := AsError(err)
			return FieldError(field+".default", "%s", e.Message)
		}
	}
	return nil
}

var intRE = regexp.MustCompile(`^-?[0-9]{1,18}$`)

// Value checks a value given for the parameter (JSON of its type) and
// returns it as the environment variable's text.
func (p *Parameter) Value(raw json.RawMessage) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", FieldError("parameters."+p.Name, format, args...)
	}
	if len(raw) > MaxParameterBytes {
		return bad("at most %d bytes", MaxParameterBytes)
	}
	var text string
	switch p.Type {
	case ParamString:
		if err := json.Unmarshal(raw, &text); err != nil {
			return bad("must be a string")
		}
		if strings.ContainsRune(text, 0) {
			return bad("must not hold NUL bytes")
		}
	case ParamInt:
		s := strings.TrimSpace(string(raw))
		if !intRE.MatchString(s) {
			return bad("must be an integer")
		}
		n, _ := strconv.ParseInt(s, 10, 64)
		if p.Min != nil && n < *p.Min {
			return bad("must be at least %d, got %d", *p.Min, n)
		}
		if p.Max != nil && n > *p.Max {
			return bad("must be at most %d, got %d", *p.Max, n)
		}
		text = strconv.FormatInt(n, 10)
	case ParamBool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return bad("must be true or false")
		}
		text = strconv.FormatBool(b)
	}
	if len(p.Enum) > 0 && !slices.Contains(p.Enum, text) {
		return bad("must be one of %s, got %q", strings.Join(p.Enum, ", "), text)
	}
	return text, nil
}

// ParseVersion parses a release version: semver, with an optional leading v.
func ParseVersion(field, v string) (*semver.Version, error) {
	if v == "" {
		return nil, FieldError(field, "is required")
	}
	if len(v) > MaxVersionBytes {
		return nil, FieldError(field, "at most %d bytes", MaxVersionBytes)
	}
	sv, err := semver.StrictNewVersion(strings.TrimPrefix(v, "v"))
	if err != nil {
		return nil, FieldError(field, "%q is not a semantic version like 1.4.2: %v", v, err)
	}
	return sv, nil
}

// ParseRange parses an upgrade_from range such as ">=1.3.0" or "^1.2".
func ParseRange(field, r string) (*semver.Constraints, error) {
	if len(r) > MaxUpgradeFromBytes {
		return nil, FieldError(field, "at most %d bytes", MaxUpgradeFromBytes)
	}
	c, err := semver.NewConstraint(r)
	if err != nil {
		return nil, FieldError(field, "%q is not a version range like \">=1.3.0\": %v", r, err)
	}
	return c, nil
}

// Validate checks a release as published.
func (r *Release) Validate() error {
	if _, err := ParseVersion("version", r.Version); err != nil {
		return err
	}
	if err := validateArgv("command", r.Command); err != nil {
		return err
	}
	if err := validateEnv("env", r.Env); err != nil {
		return err
	}
	if r.UpgradeFrom != "" {
		if _, err := ParseRange("upgrade_from", r.UpgradeFrom); err != nil {
			return err
		}
	}
	if len(r.Notes) > MaxNotesBytes {
		return FieldError("notes", "at most %d bytes", MaxNotesBytes)
	}
	switch r.State {
	case "", ReleaseAvailable, ReleaseDeprecated, ReleaseRecalled:
	default:
		return FieldError("state", "must be %q, %q or %q", ReleaseAvailable, ReleaseDeprecated, ReleaseRecalled)
	}
	return nil
}

// Validate checks a release patch.
func (p *ReleasePatch) Validate() error {
	if p.State != nil {
		switch *p.State {
		case ReleaseAvailable, ReleaseDeprecated, ReleaseRecalled:
		default:
			return FieldError("state", "must be %q, %q or %q", ReleaseAvailable, ReleaseDeprecated, ReleaseRecalled)
		}
	}
	if p.Notes != nil && len(*p.Notes) > MaxNotesBytes {
		return FieldError("notes", "at most %d bytes", MaxNotesBytes)
	}
	return nil
}

// Upgradable reports whether an instance at version from may move to r.
func (r *Release) Upgradable(from string) (bool, error) {
	if r.UpgradeFrom == "" {
		return true, nil
	}
	c, err := ParseRange("upgrade_from", r.UpgradeFrom)
	if err != nil {
		return false, err
	}
	v, err := ParseVersion("release", from)
	if err != nil {
		return false, err
	}
	return c.Check(v), nil
}

// CompareVersions orders two release versions (-1, 0, 1); versions that
// do not parse sort first, by text.
func CompareVersions(a, b string) int {
	va, ea := semver.StrictNewVersion(strings.TrimPrefix(a, "v"))
	vb, eb := semver.StrictNewVersion(strings.TrimPrefix(b, "v"))
	switch {
	case ea != nil || eb != nil:
		return strings.Compare(a, b)
	default:
		return va.Compare(vb)
	}
}

// MaintenanceWindow is when a tenant accepts upgrades: on the given days,
// from Start (UTC) for Duration.
type MaintenanceWindow struct {
	Days     []string `json:"days"`
	Start    string   `json:"start"`
	Duration Duration `json:"duration"`
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

var clockRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// Validate checks a window.
func (m *MaintenanceWindow) Validate(field string) error {
	if len(m.Days) == 0 || len(m.Days) > MaxWindowDays {
		return FieldError(field+".days", "must name 1 to 7 days (mon, tue, ...)")
	}
	for i, d := range m.Days {
		if _, ok := weekdays[d]; !ok {
			return FieldError(fmt.Sprintf("%s.days[%d]", field, i), "%q is not a day: mon, tue, wed, thu, fri, sat or sun", d)
		}
		if slices.Index(m.Days, d) != i {
			return FieldError(fmt.Sprintf("%s.days[%d]", field, i), "%q named twice", d)
		}
	}
	if !clockRE.MatchString(m.Start) {
		return FieldError(field+".start", "%q is not a time of day like 01:00 (UTC)", m.Start)
	}
	if m.Duration.D() <= 0 || m.Duration.D() > 24*time.Hour {
		return FieldError(field+".duration", "must be more than 0 and at most 24h")
	}
	return nil
}

// Open reports whether the window is open at t, and when it next opens
// (t itself when open).
func (m *MaintenanceWindow) Open(t time.Time) (bool, time.Time) {
	t = t.UTC()
	hh, _ := strconv.Atoi(m.Start[:2])
	mm, _ := strconv.Atoi(m.Start[3:])
	// A window that opened on an earlier day may still be open: look back
	// one day, then forward a week.
	day := time.Date(t.Year(), t.Month(), t.Day(), hh, mm, 0, 0, time.UTC).AddDate(0, 0, -1)
	for i := 0; i <= 8; i++ {
		start := day.AddDate(0, 0, i)
		if !m.onDay(start.Weekday()) {
			continue
		}
		end := start.Add(m.Duration.D())
		if !t.Before(start) && t.Before(end) {
			return true, t
		}
		if start.After(t) {
			return false, start
		}
	}
	return false, time.Time{}
}

func (m *MaintenanceWindow) onDay(d time.Weekday) bool {
	for _, name := range m.Days {
		if weekdays[name] == d {
			return true
		}
	}
	return false
}

// String describes the window as in a reason: "tue 01:00-05:00".
func (m *MaintenanceWindow) String() string {
	hh, _ := strconv.Atoi(m.Start[:2])
	mm, _ := strconv.Atoi(m.Start[3:])
	end := time.Date(2000, 1, 1, hh, mm, 0, 0, time.UTC).Add(m.Duration.D())
	return strings.Join(m.Days, ",") + " " + m.Start + "-" + end.Format("15:04")
}
