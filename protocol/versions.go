package protocol

import "time"

// InstanceVersion is one version of an instance's spec that the servers
// keep (GET .../versions): the newest ones, the last stable one and those
// that replicas still run. Secrets are redacted as in instance answers.
type InstanceVersion struct {
	Version uint64 `json:"version"`
	// CreatedAt is when the version was made; zero for a version made
	// before the cluster recorded it.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// Current is the instance's version; Stable the last one that was
	// fully healthy.
	Current bool `json:"current,omitempty"`
	Stable  bool `json:"stable,omitempty"`
	// ProductRef is the version's product and release (an instance of a
	// product); a version made before the cluster recorded it has none.
	ProductRef
	Spec Spec `json:"spec"`
}

// RollbackRequest is the body of POST .../rollback.
type RollbackRequest struct {
	// Version is the version whose spec (and release) the instance gets
	// again, as a new version; 0 means the last stable one, or when the
	// current version is the stable one, the version before it.
	Version uint64 `json:"version,omitempty"`
}
