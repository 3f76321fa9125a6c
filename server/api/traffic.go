package api

// The gateways' side of the API: the routing table, and the URLs the
// gateways give instances.

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// DefaultGatewayURL is where drover gateway listens by default, and so the
// base of instances' endpoints unless -gateway-url says otherwise.
const DefaultGatewayURL = "http://drover.localhost:4780"

// ParseGatewayURL checks a gateway base URL: http or https, a host name
// (the gateways' -domain) and an optional port, nothing else.
func ParseGatewayURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
		strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return nil, protocol.FieldError("gateway-url", "%q is not a base URL like https://apps.example.com or http://drover.localhost:4780", s)
	}
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

// gatewayParts are the gateways' base URL cut where an instance's names
// go: scheme "://" {host} suffix, with suffix ":port/" or "/".
type gatewayParts struct {
	scheme, domain, suffix string // domain: ".apps.example.com"
}

func newGatewayParts(g *url.URL) gatewayParts {
	if g == nil {
		return gatewayParts{}
	}
	suffix := "/"
	if p := g.Port(); p != "" {
		suffix = ":" + p + "/"
	}
	return gatewayParts{scheme: g.Scheme + "://", domain: "." + g.Hostname(), suffix: suffix}
}

// endpoints are an instance's URLs through the gateways: the generated
// {name}.{tenant}.{domain} first, then its custom domains.
func (a *API) endpoints(in *protocol.Instance) []string {
	g := a.gateway
	if g.scheme == "" {
		return nil
	}
	out := make([]string, 1, 1+len(in.Domains))
	out[0] = g.scheme + in.Name + "." + in.Tenant + g.domain + g.suffix
	for _, d := range in.Domains {
		out = append(out, g.scheme+d+g.suffix)
	}
	return out
}

// checkDomains refuses custom domains under the gateways' own domain: they
// would shadow, or be shadowed by, the generated names of instances.
func (a *API) checkDomains(domains []string) error {
	g := a.cfg.GatewayURL
	if g == nil {
		return nil
	}
	base := g.Hostname()
	for i, d := range domains {
		if d == base || strings.HasSuffix(d, "."+base) {
			return protocol.FieldError(fmt.Sprintf("domains[%d]", i), "%q is under the gateways' domain %s, where names are generated as {instance}.{tenant}.%s", d, base, base)
		}
	}
	return nil
}

// routeTable answers the gateways' routing table; blocking queries wake when
// instances, replicas or nodes change.
func (a *API) routeTable(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableInstances, state.TableReplicas, state.TableNodes)
	if err != nil {
		return err
	}
	idx := snap.Index(state.TableInstances, state.TableReplicas, state.TableNodes)
	if idx == 0 {
		idx = snap.Index() // none of its tables written yet: as X-Drover-Index
	}
	writeJSON(w, http.StatusOK, protocol.Routes{Index: idx, Routes: snap.Routes()})
	return nil
}
