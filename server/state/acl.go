package state

// Tokens and the ACL bootstrap.

import (
	"github.com/drover-dev/drover/protocol"
)

func (w *writer) tokenCreate(t protocol.Token, hash string) error {
	if w.first(tableTokens, t.ID) != nil {
		return protocol.Errorf(protocol.CodeConflict, "token %q exists", t.ID)
	}
	t.Secret, t.AgentJoinToken = "", ""
	t.CreatedAt, t.CreateIndex = w.cmd.Time, w.index
	w.insert(tableCredentials, &Credential{Hash: hash, Kind: CredentialToken, Owner: t.ID})
	w.insert(tableTokens, &t)
	return nil
}

func (w *writer) tokenDelete(c *NameBody) error {
	raw := w.first(tableTokens, c.Name)
	if raw == nil {
		return protocol.NotFound("token", c.Name)
	}
	// The last live management token stays, so that the cluster keeps an
	// administrator.
	if raw.(*protocol.Token).Role == protocol.RoleManagement {
		live := 0
		for _, t := range w.snap().Tokens() {
			if t.Role == protocol.RoleManagement && t.ID != c.Name && !t.Expired(w.cmd.Time) {
				live++
			}
		}
		if live == 0 {
			return protocol.Errorf(protocol.CodeConflict, "token %s is the last management token; create another before revoking it", c.Name)
		}
	}
	w.deleteAll(tableCredentials, "owner", CredentialToken, c.Name)
	w.delete(tableTokens, raw)
	return nil
}

// MetaACLBootstrapped is set once the first management token exists.
const (
	MetaACLBootstrapped = "acl_bootstrapped"
	MetaJoinTokenHash   = "join_token_hash"
)

func (w *writer) aclBootstrap(c *ACLBootstrap) error {
	if w.first(tableMeta, MetaACLBootstrapped) != nil {
		return protocol.Errorf(protocol.CodeConflict, "ACL already bootstrapped")
	}
	w.insert(tableMeta, &Meta{Key: MetaACLBootstrapped, N: w.index})
	if c.JoinTokenHash != "" {
		w.insert(tableMeta, &Meta{Key: MetaJoinTokenHash, Value: c.JoinTokenHash})
	}
	return w.tokenCreate(c.Token, c.SecretHash)
}
