package api

import (
	"net/http"

	"github.com/drover-dev/drover/internal/uid"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/rollout"
	"github.com/drover-dev/drover/server/state"
)

// Rollouts: operators create and steer them; their records name every
// tenant's instances, so tenant tokens do not read them.

func (a *API) rolloutRoutes() {
	a.handle("POST /v1/rollouts", write, operators, a.createRollout)
	a.handle("GET /v1/rollouts", read, operators, a.listRollouts)
	a.handle("GET /v1/rollouts/{id}", read, operators, readOne(a, func(snap *state.Snapshot, r *http.Request) (*protocol.Rollout, error) {
		id := r.PathValue("id")
		if ro := snap.Rollout(id); ro != nil {
			return ro, nil
		}
		return nil, protocol.NotFound("rollout", id)
	}, state.TableRollouts))
	for _, action := range []string{state.RolloutPause, state.RolloutResume, state.RolloutCancel, state.RolloutApprove} {
		a.handle("POST /v1/rollouts/{id}/"+action, write, operators, a.controlRollout(action))
	}
}

func (a *API) createRollout(w http.ResponseWriter, r *http.Request) error {
	var req protocol.RolloutRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	dryRun := r.URL.Query().Get("dry_run")
	if dryRun != "" && dryRun != "true" && dryRun != "false" {
		return protocol.FieldError("dry_run", "must be true or false")
	}
	ro, err := rollout.New(a.store.Snapshot(), req, uid.New(), a.cfg.Clock())
	if err != nil {
		return err
	}
	if dryRun == "true" {
		writeJSON(w, http.StatusOK, ro)
		return nil
	}
	made, err := change[protocol.Rollout](a, w, r, a.auditRecord(r, string(state.CmdRolloutCreate), ro.ID), state.CmdRolloutCreate, state.RolloutCreate{Rollout: *ro})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, made)
	return nil
}

func (a *API) listRollouts(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	product, st := q.Get("product"), q.Get("state")
	if product != "" {
		if err := protocol.ValidateName("product", product); err != nil {
			return err
		}
	}
	snap, err := a.read(w, r, state.TableRollouts)
	if err != nil {
		return err
	}
	out := []*protocol.Rollout{}
	for _, ro := range snap.Rollouts() {
		if (product == "" || ro.Product == product) && (st == "" || ro.State == st) {
			out = append(out, ro)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) controlRollout(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("id")
		ro, err := change[protocol.Rollout](a, w, r, a.auditRecord(r, string(state.CmdRolloutControl), id), state.CmdRolloutControl, state.RolloutControl{ID: id, Action: action})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, ro)
		return nil
	}
}
