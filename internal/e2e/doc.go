// Package e2e holds Drover's multi-process tests: they build the drover
// binary once, start real servers and agents on free loopback ports (and
// in network namespaces for network cuts), run real replica processes, and
// check what users observe through the HTTP API and the CLI. It has no code
// outside its tests; README.md says how to run and extend it.
package e2e
