package api

import (
	"net/http"
	"sort"

	"github.com/drover-dev/drover/internal/secret"
	"github.com/drover-dev/drover/internal/uid"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// aclBootstrap creates the first management token, once, and, unless
// -agent-join-token set one, the agents' join token. Both secrets are in
// this answer only; the state keeps their hashes.
func (a *API) aclBootstrap(w http.ResponseWriter, r *http.Request) error {
	if a.store.Snapshot().Meta(state.MetaACLBootstrapped) != nil {
		return protocol.Errorf(protocol.CodeConflict, "ACLs are already bootstrapped: ask the holder of a management token for a token")
	}
	sec := secret.New()
	tok := protocol.Token{ID: uid.New(), Role: protocol.RoleManagement, Description: "bootstrap token"}
	cmd := state.ACLBootstrap{Token: tok, SecretHash: secret.Hash(sec)}
	join := ""
	if a.cfg.AgentJoinToken == "" {
		js := secret.New()
		cmd.JoinTokenHash = secret.Hash(js)
		join = secret.JoinToken{Secret: js, CAFingerprint: a.cfg.CAFingerprint}.String()
	}
	made, err := change[protocol.Token](a, w, r, a.auditRecord(r, string(state.CmdACLBootstrap), "acl"), state.CmdACLBootstrap, cmd)
	if err != nil {
		return err
	}
	out := *made
	out.Secret, out.AgentJoinToken = sec, join
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) error {
	var req protocol.TokenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	now := a.cfg.Clock().UTC()
	if err := req.Validate(now); err != nil {
		return err
	}
	if req.Tenant != "" && a.store.Snapshot().Tenant(req.Tenant) == nil {
		return protocol.FieldError("tenant", "unknown tenant %q", req.Tenant)
	}
	tok := protocol.Token{ID: uid.New(), Role: req.Role, Tenant: req.Tenant, Description: req.Description, ExpiresAt: req.ExpiresAt.UTC()}
	if req.TTL > 0 {
		tok.ExpiresAt = now.Add(req.TTL.D())
	}
	sec := secret.New()
	rec := a.auditRecord(r, string(state.CmdTokenCreate), tok.ID)
	rec.Tenant = tok.Tenant // a tenant's tokens are in its own trail
	made, err := change[protocol.Token](a, w, r, rec, state.CmdTokenCreate, state.TokenCreate{Token: tok, SecretHash: secret.Hash(sec)})
	if err != nil {
		return err
	}
	if w.Header().Get(HeaderReplayed) == "true" {
		// The first request's secret was in its answer only; this one's
		// was never stored.
		return protocol.Errorf(protocol.CodeConflict, "token %s was created by the first request with this Idempotency-Key; its secret was in that answer only: revoke it and create another", made.ID)
	}
	out := *made
	out.Secret = sec
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// listTokens answers the tokens, oldest first, optionally of one tenant or
// role. Secrets are not in the state, so not in the answer.
func (a *API) listTokens(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableTokens)
	if err != nil {
		return err
	}
	tenant, role := r.URL.Query().Get("tenant"), r.URL.Query().Get("role")
	out := []*protocol.Token{}
	for _, t := range snap.Tokens() {
		if tenant != "" && t.Tenant != tenant || role != "" && t.Role != role {
			continue
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	writeJSON(w, http.StatusOK, out)
	return nil
}

// tokenSelf answers the caller's own token. With ACL off there is none:
// the answer says every request acts as management.
func (a *API) tokenSelf(w http.ResponseWriter, r *http.Request) error {
	id := identityFrom(r)
	if !a.cfg.ACL {
		writeJSON(w, http.StatusOK, protocol.Token{Role: protocol.RoleManagement, Description: "ACLs are off: every request acts as management"})
		return nil
	}
	snap, err := a.read(w, r, state.TableTokens)
	if err != nil {
		return err
	}
	t := snap.Token(id.TokenID)
	if t == nil {
		return protocol.NotFound("token", id.TokenID)
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// deleteToken revokes a token at once: its next request is refused. The
// FSM refuses to revoke the last management token, so that the cluster
// cannot be locked out of its own administration.
func (a *API) deleteToken(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	rec := a.auditRecord(r, string(state.CmdTokenDelete), id)
	if t := a.store.Snapshot().Token(id); t != nil {
		rec.Tenant = t.Tenant
	}
	if _, err := a.proposeAudited(w, r, rec, state.CmdTokenDelete, state.NameBody{Name: id}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// revokeNode revokes a node's secret and closes its agent's connection:
// the agent is refused from then on, and must register again with the
// join token as a new node.
func (a *API) revokeNode(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	n, err := change[protocol.Node](a, w, r, a.auditRecord(r, string(state.CmdNodeRevoke), id), state.CmdNodeRevoke, state.NameBody{Name: id})
	if err != nil {
		return err
	}
	if a.cfg.Nodes != nil {
		a.cfg.Nodes.CloseNode(id)
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}
