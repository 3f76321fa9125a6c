package state

// Node commands: registration, up and down, drain, eligibility and revocation.

import (
	"maps"

	"github.com/drover-dev/drover/protocol"
)

func (w *writer) nodeRegister(c *NodeRegister) error {
	n := c.Node
	old := w.snap().Node(n.ID)
	if old == nil {
		if c.SecretHash == "" {
			return protocol.Errorf(protocol.CodeInvalidArgument, "node %q registers without a secret", n.ID)
		}
		n.CreateIndex = w.index
		n.Eligible = true
		w.insert(tableCredentials, &Credential{Hash: c.SecretHash, Kind: CredentialNode, Owner: n.ID})
	} else {
		if old.Revoked {
			return protocol.Errorf(protocol.CodePermissionDenied, "node %q is revoked", n.ID)
		}
		n.CreateIndex, n.Eligible, n.Drain = old.CreateIndex, old.Eligible, old.Drain
	}
	n.Status = protocol.NodeReady
	if n.Drain != nil {
		n.Status = protocol.NodeDraining
	}
	n.LastSeen = w.cmd.Time
	n.ModifyIndex = w.index
	w.insert(tableNodes, &n)
	switch {
	case old == nil:
		w.publishNode(&n, "node-registered", "registered (region %q)", n.Region)
	case old.Status == protocol.NodeDown:
		w.publishNode(&n, "node-up", "connected again")
	}
	if old == nil || old.Status == protocol.NodeDown || capacityChanged(old, &n) {
		w.evalWaiting("")
	}
	return nil
}

// capacityChanged reports whether a node's facts changed in a way that may
// let it take replicas it could not before.
func capacityChanged(old, n *protocol.Node) bool {
	return old.Resources.CPUMillis != n.Resources.CPUMillis || old.Resources.MemoryMB != n.Resources.MemoryMB ||
		old.PortRange != n.PortRange || old.Region != n.Region || !maps.Equal(old.Labels, n.Labels)
}

// evalWaiting asks the scheduler to look at every instance that has a
// replica waiting for a node: capacity may have appeared. skip names an
// instance to leave out (the one whose plan freed the capacity).
func (w *writer) evalWaiting(skip string) {
	seen := map[string]bool{skip: true}
	for _, r := range w.snap().WaitingReplicas() {
		id := protocol.InstanceID(r.Tenant, r.Instance)
		if !seen[id] {
			seen[id] = true
			if e := w.first(tableEvals, id); e != nil && e.(*Eval).Index == w.index {
				continue // already evaluated for this entry
			}
			w.eval(id, "node-capacity")
		}
	}
}

// evalNode asks the scheduler to look at every instance with a replica on node.
func (w *writer) evalNode(node, why string) {
	seen := map[string]bool{}
	for _, r := range w.snap().NodeReplicas(node) {
		id := protocol.InstanceID(r.Tenant, r.Instance)
		if !seen[id] && w.first(tableInstances, id) != nil {
			seen[id] = true
			w.eval(id, why)
		}
	}
}

func (w *writer) node(id string) (*protocol.Node, error) {
	raw := w.first(tableNodes, id)
	if raw == nil {
		return nil, protocol.NotFound("node", id)
	}
	n := *raw.(*protocol.Node)
	n.ModifyIndex = w.index
	return &n, nil
}

func (w *writer) nodeStatus(c *NodeStatusUpdate) error {
	for _, u := range c.Nodes {
		n, err := w.node(u.ID)
		if err != nil {
			continue // removed meanwhile: nothing to mark
		}
		if !u.Seen.IsZero() {
			n.LastSeen = u.Seen
		}
		if !u.Up {
			if n.Status == protocol.NodeDown {
				continue
			}
			n.Status = protocol.NodeDown
			w.publishNode(n, "node-down", "missed its heartbeat")
			for _, r := range w.snap().NodeReplicas(n.ID) {
				if r.Terminal() {
					continue
				}
				lost := *r
				lost.State, lost.Health, lost.Message, lost.ModifyIndex = protocol.ReplicaLost, "", "node "+n.Name+" missed its heartbeat", w.index
				w.insert(tableReplicas, &lost)
				w.event(protocol.Event{Tenant: r.Tenant, Instance: r.Instance, Type: "replica-lost", Replica: r.ID, Node: n.ID, Message: lost.Message})
			}
			w.insert(tableNodes, n)
			w.evalNode(n.ID, "node-down")
			continue
		}
		wasDown := n.Status == protocol.NodeDown
		n.Status = protocol.NodeReady
		if n.Drain != nil {
			n.Status = protocol.NodeDraining
		}
		w.insert(tableNodes, n)
		if wasDown {
			w.publishNode(n, "node-up", "heartbeats again")
			w.evalWaiting("")
			w.evalNode(n.ID, "node-up")
		}
	}
	return nil
}

func (w *writer) nodeDrain(c *NodeDrain) error {
	n, err := w.node(c.ID)
	if err != nil {
		return err
	}
	ended := n.Drain != nil && c.Drain == nil
	n.Drain = c.Drain
	if n.Status != protocol.NodeDown {
		n.Status = protocol.NodeReady
		if n.Drain != nil {
			n.Status = protocol.NodeDraining
		}
	}
	w.insert(tableNodes, n)
	if n.Drain != nil {
		w.publishNode(n, "node-drain", "draining")
	} else {
		w.publishNode(n, "node-drain", "drain ended")
	}
	w.evalNode(n.ID, "node-drain")
	if ended && n.Status != protocol.NodeDown {
		w.evalWaiting("")
	}
	return nil
}

func (w *writer) nodeEligibility(c *NodeEligibility) error {
	n, err := w.node(c.ID)
	if err != nil {
		return err
	}
	n.Eligible = c.Eligible
	w.insert(tableNodes, n)
	w.publishNode(n, "node-eligibility", "eligible=%t", n.Eligible)
	if c.Eligible {
		w.evalWaiting("")
	}
	return nil
}

func (w *writer) nodeRevoke(c *NameBody) error {
	n, err := w.node(c.Name)
	if err != nil {
		return err
	}
	n.Revoked = true
	n.Eligible = false
	w.deleteAll(tableCredentials, "owner", CredentialNode, n.ID)
	w.insert(tableNodes, n)
	w.publishNode(n, "node-revoked", "revoked")
	return nil
}
