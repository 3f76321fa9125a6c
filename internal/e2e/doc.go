// Package e2e holds Drover's multi-process tests: they build the drover
// binary once, start real servers (and, with later issues, agents) on free
// loopback ports, and check what users observe through the HTTP API. It has
// no code outside its tests; README.md says how to run and extend it.
package e2e
