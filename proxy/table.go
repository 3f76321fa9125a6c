package proxy

import (
	"strings"
	"sync/atomic"

	"github.com/drover-dev/drover/protocol"
)

// table is one routing table, as the servers last answered it: immutable
// once built, swapped whole.
type table struct {
	index    uint64
	byID     map[string]*route // tenant/name
	byDomain map[string]*route // custom domains
}

// route is one instance's pool of backends.
type route struct {
	tenant, name string
	backends     []*backend
	// gone is set when a newer table no longer has the instance: its
	// metrics are dropped, and requests still in flight add none.
	gone atomic.Bool
}

// build makes the table of an answer, reusing the backends of the previous
// table (prev, possibly nil) where a replica is still at the same address,
// so that their outstanding counts and ejections carry over.
func build(rs protocol.Routes, prev *table) *table {
	t := &table{index: rs.Index, byID: make(map[string]*route, len(rs.Routes)), byDomain: map[string]*route{}}
	old := map[string]*backend{}
	if prev != nil {
		for _, rt := range prev.byID {
			for _, b := range rt.backends {
				old[b.replica+"@"+b.addr] = b
			}
		}
	}
	for _, r := range rs.Routes {
		rt := &route{tenant: r.Tenant, name: r.Name, backends: make([]*backend, 0, len(r.Backends))}
		for _, be := range r.Backends {
			b := old[be.Replica+"@"+be.Addr]
			if b == nil {
				b = &backend{replica: be.Replica, addr: be.Addr}
			}
			rt.backends = append(rt.backends, b)
		}
		t.byID[protocol.InstanceID(r.Tenant, r.Name)] = rt
		for _, d := range r.Domains {
			t.byDomain[d] = rt
		}
	}
	return t
}

// lookup finds the route of a request's host: {name}.{tenant}.{domain}
// first (a generated name is never shadowed by a custom domain), then the
// custom domains. host may carry a port and a trailing dot, in any case.
func (t *table) lookup(host, domain string) *route {
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.Contains(h, "]") {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if prefix, ok := strings.CutSuffix(host, "."+domain); ok {
		if name, tenant, ok := strings.Cut(prefix, "."); ok && !strings.Contains(tenant, ".") {
			return t.byID[protocol.InstanceID(tenant, name)]
		}
		return nil
	}
	return t.byDomain[host]
}
