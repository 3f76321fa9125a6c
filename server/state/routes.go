package state

import (
	"net"
	"strconv"

	"github.com/drover-dev/drover/protocol"
)

// Routes returns the gateways' routing table: every instance with its
// custom domains and the replicas that take its traffic. A backend is a
// replica the scheduler wants running that its agent reports healthy, on
// a node that is not down, at the node's address and the port its
// version routes to (spec.route.port, else its first port). A replica the
// scheduler stops leaves the table in the same Raft entry, before its
// agent drains and signals it.
func (s *Snapshot) Routes() []protocol.Route {
	ins := list[protocol.Instance](s, tableInstances, "id")
	out := make([]protocol.Route, 0, len(ins))
	nodes := map[string]*protocol.Node{}
	for _, in := range ins {
		rt := protocol.Route{Tenant: in.Tenant, Name: in.Name, Domains: in.Domains, Backends: []protocol.Backend{}}
		for _, r := range s.Replicas(in.ID) {
			if r.Desired != protocol.DesiredRun || r.State != protocol.ReplicaHealthy || r.Node == "" {
				continue
			}
			n, ok := nodes[r.Node]
			if !ok {
				n = s.Node(r.Node)
				nodes[r.Node] = n
			}
			if n == nil || n.Status == protocol.NodeDown || n.Address == "" {
				continue
			}
			port := r.Ports[s.routePort(in, r.Version)]
			if port == 0 {
				continue
			}
			rt.Backends = append(rt.Backends, protocol.Backend{Replica: r.ID, Addr: net.JoinHostPort(n.Address, strconv.Itoa(port))})
		}
		out = append(out, rt)
	}
	return out
}

// routePort names the port an instance's replicas of a version serve
// traffic on: that version's spec.route.port, else its first port.
func (s *Snapshot) routePort(in *protocol.Instance, version uint64) string {
	spec := &in.Spec
	if version != in.Version {
		if v := s.Version(in.ID, version); v != nil {
			spec = &v.Spec
		}
	}
	if spec.Route != nil && spec.Route.Port != "" {
		return spec.Route.Port
	}
	if len(spec.Ports) > 0 {
		return spec.Ports[0]
	}
	return ""
}
