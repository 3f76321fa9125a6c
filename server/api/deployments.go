package api

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// promoteRequest is the optional body of POST .../deployment/promote: the
// deployment the caller saw, so that a newer one is not promoted by mistake.
type promoteRequest struct {
	ID string `json:"id"`
}

// promoteDeployment promotes the canaries of an instance's running
// deployment: the rest of its replicas then roll to the new version.
// Promoting a promoted deployment changes nothing; one without canaries,
// or none running, is a conflict.
func (a *API) promoteDeployment(w http.ResponseWriter, r *http.Request) error {
	tenant, name, err := pathInstance(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return protocol.Errorf(protocol.CodeTooLarge, "request body over %d bytes", protocol.MaxBodyBytes)
		}
		return protocol.Errorf(protocol.CodeInvalidArgument, "read request body: %v", err)
	}
	var req promoteRequest
	if len(bytes.TrimSpace(body)) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	id := protocol.InstanceID(tenant, name)
	in, err := change[protocol.Instance](a, w, r, a.auditRecord(r, string(state.CmdDeploymentPromote), id), state.CmdDeploymentPromote, state.DeploymentPromote{Tenant: tenant, Name: name, ID: req.ID})
	if err != nil {
		return err
	}
	a.writeInstance(w, http.StatusOK, a.store.Snapshot(), in)
	return nil
}
