package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"
)

// Feature flags (API.md, "Feature flags"): a product defines its flags and
// their variants; overrides per environment, tenant and instance choose
// another variant; each replica is served its instance's resolved values.

// Limits of feature flags.
const (
	MaxFlagsPerProduct = 200
	MaxFlagVariants    = 50
	MaxFlagValueBytes  = 1024 // one variant's value, as compact JSON
	// MaxFlagBytesPerProduct bounds the sum over a product's flags of
	// their largest value: what one replica's assignment carries of them.
	MaxFlagBytesPerProduct = 32 << 10
	maxFlagKeyBytes        = 128
)

// Flag types.
const (
	FlagBoolean = "boolean"
	FlagString  = "string"
	FlagNumber  = "number"
	FlagObject  = "object"
)

// Scopes of flag overrides, and the source of a resolved value that no
// override chose.
const (
	FlagScopeInstance    = "instance"
	FlagScopeTenant      = "tenant"
	FlagScopeEnvironment = "environment"
	FlagSourceDefault    = "default"
)

// FlagScopes lists the scopes of overrides, the one that wins first.
var FlagScopes = []string{FlagScopeInstance, FlagScopeTenant, FlagScopeEnvironment}

// flagKeyRE is a flag's key or a variant's name: letters, digits and
// ".", "_", "-", as OpenFeature code names flags ("new-checkout",
// "checkout.v2", "maxItems").
var flagKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Flag is a product's definition of a feature flag.
type Flag struct {
	Product        string                     `json:"product"`
	Key            string                     `json:"key"`
	Type           string                     `json:"type"`
	Variants       map[string]json.RawMessage `json:"variants"`
	DefaultVariant string                     `json:"default_variant"`
	// TenantEditable lets tenant-admin tokens override it for their tenant
	// and its instances.
	TenantEditable bool      `json:"tenant_editable,omitempty"`
	Description    string    `json:"description,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	CreateIndex    uint64    `json:"create_index"`
	ModifyIndex    uint64    `json:"modify_index"`
}

// FlagOverride chooses a variant of a flag for an environment, a tenant
// or an instance. It names no product: it applies to every product that
// defines the key with that variant.
type FlagOverride struct {
	Scope string `json:"scope"`
	// Target is the environment, the tenant, or the instance's tenant/name.
	Target      string    `json:"target"`
	Key         string    `json:"key"`
	Variant     string    `json:"variant"`
	UpdatedAt   time.Time `json:"updated_at"`
	ModifyIndex uint64    `json:"modify_index"`
}

// FlagVariant is the body of an override's PUT.
type FlagVariant struct {
	Variant string `json:"variant"`
}

// ResolvedFlag is a flag's value for one instance and where it comes from
// (Source: instance, tenant, environment or default).
type ResolvedFlag struct {
	Key            string          `json:"key"`
	Type           string          `json:"type"`
	Variant        string          `json:"variant"`
	Value          json.RawMessage `json:"value"`
	Source         string          `json:"source"`
	TenantEditable bool            `json:"tenant_editable,omitempty"`
}

// ValidateFlagKey checks a flag's key (or, with a field other than key, a
// variant's name).
func ValidateFlagKey(field, key string) error {
	if len(key) > maxFlagKeyBytes || !flagKeyRE.MatchString(key) {
		return FieldError(field, "%q must be 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit", Truncate(key, 64), maxFlagKeyBytes)
	}
	return nil
}

// Validate checks a definition and makes each value compact JSON.
func (f *Flag) Validate() error {
	if err := ValidateName("product", f.Product); err != nil {
		return err
	}
	if err := ValidateFlagKey("key", f.Key); err != nil {
		return err
	}
	switch f.Type {
	case FlagBoolean, FlagString, FlagNumber, FlagObject:
	default:
		return FieldError("type", "must be %s, %s, %s or %s", FlagBoolean, FlagString, FlagNumber, FlagObject)
	}
	if len(f.Variants) == 0 || len(f.Variants) > MaxFlagVariants {
		return FieldError("variants", "must name 1 to %d variants, got %d", MaxFlagVariants, len(f.Variants))
	}
	for _, name := range slices.Sorted(maps.Keys(f.Variants)) {
		field := "variants." + name
		if err := ValidateFlagKey(field, name); err != nil {
			return err
		}
		v, err := flagValue(field, f.Type, f.Variants[name])
		if err != nil {
			return err
		}
		f.Variants[name] = v
	}
	if _, ok := f.Variants[f.DefaultVariant]; !ok {
		return FieldError("default_variant", "%q is not one of the variants", Truncate(f.DefaultVariant, 64))
	}
	if len(f.Description) > MaxDescriptionBytes {
		return FieldError("description", "at most %d bytes", MaxDescriptionBytes)
	}
	return nil
}

// flagValue checks that raw is a JSON value of type typ within the size
// limit, and returns it compact.
func flagValue(field, typ string, raw json.RawMessage) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil || b.Len() == 0 {
		return nil, FieldError(field, "must be a JSON %s", typ)
	}
	if b.Len() > MaxFlagValueBytes {
		return nil, FieldError(field, "at most %d bytes of JSON, got %d", MaxFlagValueBytes, b.Len())
	}
	var v any
	if err := json.Unmarshal(b.Bytes(), &v); err != nil {
		return nil, FieldError(field, "must be a JSON %s", typ)
	}
	ok := false
	switch v.(type) {
	case bool:
		ok = typ == FlagBoolean
	case string:
		ok = typ == FlagString
	case float64:
		ok = typ == FlagNumber
	case map[string]any:
		ok = typ == FlagObject
	}
	if !ok {
		return nil, FieldError(field, "must be a JSON %s, got %s", typ, Truncate(b.String(), 64))
	}
	return b.Bytes(), nil
}

// Resolve gives the flag's value where chosen maps scopes to the variant
// their override names: the most specific override whose variant the flag
// has wins, else the default. An override of a variant the definition no
// longer has is passed over.
func (f *Flag) Resolve(chosen map[string]string) ResolvedFlag {
	r := ResolvedFlag{Key: f.Key, Type: f.Type, Variant: f.DefaultVariant, Source: FlagSourceDefault, TenantEditable: f.TenantEditable}
	for _, scope := range FlagScopes {
		if v, ok := f.Variants[chosen[scope]]; ok {
			r.Variant, r.Source = chosen[scope], scope
			r.Value = v
			return r
		}
	}
	r.Value = f.Variants[f.DefaultVariant]
	return r
}

// FlagTarget describes an override's target for messages: "tenant acme".
func FlagTarget(scope, target string) string { return fmt.Sprintf("%s %s", scope, target) }

// LargestValue is the size of the flag's largest value.
func (f *Flag) LargestValue() int {
	n := 0
	for _, v := range f.Variants {
		n = max(n, len(v))
	}
	return n
}
