package api

import (
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// tenantView is a tenant as answered: with what it uses of its quotas, so
// that an operator sees how close it is to them. The FSM refuses a create,
// update, scale or start that would exceed a quota (state.Usage counts).
type tenantView struct {
	*protocol.Tenant
	Usage protocol.Quotas `json:"usage"`
}

func tenantViewOf(snap *state.Snapshot, t *protocol.Tenant) tenantView {
	return tenantView{Tenant: t, Usage: state.Usage(snap, t.Name)}
}
