package protocol

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of tokens.
const (
	MaxTokenDescriptionBytes = 256
	MaxTokenTTL              = 10 * 365 * 24 * time.Hour
)

// TokenRequest is the body of POST /v1/acl/tokens. A token expires at
// ExpiresAt, or TTL after its creation; never when both are zero.
type TokenRequest struct {
	Role        string    `json:"role"`
	Tenant      string    `json:"tenant,omitempty"`
	Description string    `json:"description,omitempty"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	TTL         Duration  `json:"ttl,omitempty"`
}

// TenantRole reports whether role is one of a tenant's roles, which only
// reach their own tenant's objects.
func TenantRole(role string) bool {
	return role == RoleTenantAdmin || role == RoleTenantViewer
}

// Validate checks a token request. Tenant roles need a tenant; management
// and operator tokens reach every tenant and take none. Agents get their
// credentials (node secrets) by registering with the join token, not here.
func (r *TokenRequest) Validate(now time.Time) error {
	switch r.Role {
	case RoleManagement, RoleOperator, RoleGateway:
		if r.Tenant != "" {
			return FieldError("tenant", "a %s token reaches every tenant; only %s and %s tokens are scoped to one", r.Role, RoleTenantAdmin, RoleTenantViewer)
		}
	case RoleTenantAdmin, RoleTenantViewer:
		if err := ValidateName("tenant", r.Tenant); err != nil {
			return err
		}
	case RoleAgent:
		return FieldError("role", "agents register with the cluster's join token and get a node secret; agent tokens are not created here")
	case "":
		return FieldError("role", "is required: one of %s", strings.Join(TokenRoles, ", "))
	default:
		return FieldError("role", "%q is not one of %s", r.Role, strings.Join(TokenRoles, ", "))
	}
	if len(r.Description) > MaxTokenDescriptionBytes || !utf8.ValidString(r.Description) {
		return FieldError("description", "at most %d bytes of UTF-8", MaxTokenDescriptionBytes)
	}
	if r.TTL < 0 || r.TTL.D() > MaxTokenTTL {
		return FieldError("ttl", "must be between 0 and %s", MaxTokenTTL)
	}
	if !r.ExpiresAt.IsZero() && r.TTL != 0 {
		return FieldError("ttl", "give expires_at or ttl, not both")
	}
	if !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(now) {
		return FieldError("expires_at", "is in the past")
	}
	return nil
}

// Expired reports whether the token has expired at now.
func (t *Token) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}
