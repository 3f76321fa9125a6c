package state_test

import (
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// A product's releases are its own: crm's are not crm2's, and deleting crm
// leaves crm2's.
func TestReleasesOfAProductWhoseNameIsAnothersPrefix(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"crm", "crm2"} {
		h.Must(state.CmdProductUpsert, state.ProductUpsert{Product: protocol.Product{Name: p}})
		h.Must(state.CmdReleasePublish, state.ReleasePublish{Release: protocol.Release{Product: p, Version: "1.0.0", Command: []string{"/bin/" + p}}})
	}
	if rs := h.Snapshot().Releases("crm"); len(rs) != 1 || rs[0].Product != "crm" {
		t.Errorf("releases of crm: %d (%+v)", len(rs), rs)
	}
	h.Must(state.CmdProductDelete, state.NameBody{Name: "crm"})
	if rs := h.Snapshot().Releases("crm2"); len(rs) != 1 {
		t.Errorf("deleting crm left crm2 %d releases, want 1", len(rs))
	}
}
