// Package buildinfo holds what a drover binary knows about its own build:
// the release version and commit, set at link time by packaging/build.sh,
// and the agent<->server protocol version, which is part of the source.
package buildinfo

// Version is the release version of this binary, such as "1.4.2".
// packaging/build.sh sets it with
// -ldflags "-X github.com/drover-dev/drover/internal/buildinfo.Version=...".
var Version = "dev"

// Commit is the source commit this binary was built from, set at link time
// like Version.
var Commit = "none"

// ProtocolVersion is the version of the agent<->server wire protocol that this
// binary speaks. It changes only when the contract in protocol/ changes in a
// way an older peer cannot understand.
const ProtocolVersion = 1
