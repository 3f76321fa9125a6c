package api

import (
	"net/http"
	"sort"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// The vendor's catalogue: products, releases and channels. Operators write
// it; every token reads it, so that a customer's portal can offer plans,
// releases and parameters.

func (a *API) catalogRoutes() {
	a.handle("GET /v1/products", read, anyToken, a.listProducts)
	a.handle("PUT /v1/products/{product}", write, operators, a.putProduct)
	a.handle("GET /v1/products/{product}", read, anyToken, readOne(a, a.product, state.TableProducts))
	a.handle("DELETE /v1/products/{product}", write, operators, a.deleteProduct)
	a.handle("POST /v1/products/{product}/releases", write, operators, a.publishRelease)
	a.handle("GET /v1/products/{product}/releases", read, anyToken, a.listReleases)
	a.handle("GET /v1/products/{product}/releases/{version}", read, anyToken, readOne(a, a.release, state.TableReleases, state.TableProducts))
	a.handle("PATCH /v1/products/{product}/releases/{version}", write, operators, a.patchRelease)
	a.handle("PUT /v1/products/{product}/channels/{channel}", write, operators, a.setChannel)
	a.handle("GET /v1/products/{product}/channels", read, anyToken, readOne(a, func(snap *state.Snapshot, r *http.Request) ([]channelView, error) {
		p, err := a.product(snap, r)
		if err != nil {
			return nil, err
		}
		return channelsOf(p), nil
	}, state.TableProducts))
}

// readOne serves a read of one object that find looks up in the state:
// blocking and consistent as every read (API.read), 200 with the object.
func readOne[T any](a *API, find func(*state.Snapshot, *http.Request) (T, error), tables ...string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		snap, err := a.read(w, r, tables...)
		if err != nil {
			return err
		}
		v, err := find(snap, r)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}
}

func (a *API) product(snap *state.Snapshot, r *http.Request) (*protocol.Product, error) {
	name := r.PathValue("product")
	if err := protocol.ValidateName("product", name); err != nil {
		return nil, err
	}
	p := snap.Product(name)
	if p == nil {
		return nil, protocol.NotFound("product", name)
	}
	return p, nil
}

func (a *API) listProducts(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableProducts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, append([]*protocol.Product{}, snap.Products()...))
	return nil
}

func (a *API) putProduct(w http.ResponseWriter, r *http.Request) error {
	var p protocol.Product
	if err := decode(r, &p); err != nil {
		return err
	}
	name := r.PathValue("product")
	if p.Name == "" {
		p.Name = name
	}
	if p.Name != name {
		return protocol.FieldError("name", "%q does not match the product in the path, %q", p.Name, name)
	}
	if len(p.Channels) > 0 {
		return protocol.FieldError("channels", "are set one by one: PUT /v1/products/%s/channels/{channel}", name)
	}
	if err := p.Validate(); err != nil {
		return err
	}
	out, err := change[protocol.Product](a, w, r, a.auditRecord(r, string(state.CmdProductUpsert), p.Name), state.CmdProductUpsert, state.ProductUpsert{Product: p})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteProduct(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("product")
	if err := protocol.ValidateName("product", name); err != nil {
		return err
	}
	if _, err := a.propose(w, r, state.CmdProductDelete, name, state.NameBody{Name: name}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) publishRelease(w http.ResponseWriter, r *http.Request) error {
	var rel protocol.Release
	if err := decode(r, &rel); err != nil {
		return err
	}
	name := r.PathValue("product")
	if err := protocol.ValidateName("product", name); err != nil {
		return err
	}
	if rel.Product == "" {
		rel.Product = name
	}
	if rel.Product != name {
		return protocol.FieldError("product", "%q does not match the product in the path, %q", rel.Product, name)
	}
	if err := rel.Validate(); err != nil {
		return err
	}
	out, err := change[protocol.Release](a, w, r, a.auditRecord(r, string(state.CmdReleasePublish), name+"@"+rel.Version), state.CmdReleasePublish, state.ReleasePublish{Release: rel})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) listReleases(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r, state.TableReleases, state.TableProducts)
	if err != nil {
		return err
	}
	p, err := a.product(snap, r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, append([]*protocol.Release{}, snap.Releases(p.Name)...))
	return nil
}

func (a *API) release(snap *state.Snapshot, r *http.Request) (*protocol.Release, error) {
	p, err := a.product(snap, r)
	if err != nil {
		return nil, err
	}
	v := r.PathValue("version")
	if _, err := protocol.ParseVersion("version", v); err != nil {
		return nil, err
	}
	rel := snap.Release(p.Name, v)
	if rel == nil {
		return nil, protocol.NotFound("release", p.Name+" "+v)
	}
	return rel, nil
}

func (a *API) patchRelease(w http.ResponseWriter, r *http.Request) error {
	var p protocol.ReleasePatch
	if err := decode(r, &p); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	rel, err := a.release(a.store.Snapshot(), r)
	if err != nil {
		return err
	}
	cmd := state.ReleaseUpdate{Product: rel.Product, Version: rel.Version, Patch: p}
	out, err := change[protocol.Release](a, w, r, a.auditRecord(r, string(state.CmdReleaseUpdate), rel.Product+"@"+rel.Version), state.CmdReleaseUpdate, cmd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) setChannel(w http.ResponseWriter, r *http.Request) error {
	var req protocol.ChannelRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	name, channel := r.PathValue("product"), r.PathValue("channel")
	if err := protocol.ValidateName("product", name); err != nil {
		return err
	}
	if err := protocol.ValidateName("channel", channel); err != nil {
		return err
	}
	if _, err := protocol.ParseVersion("release", req.Release); err != nil {
		return err
	}
	cmd := state.ChannelSet{Product: name, Channel: channel, Release: req.Release}
	p, err := change[protocol.Product](a, w, r, a.auditRecord(r, string(state.CmdChannelSet), name+"/"+channel), state.CmdChannelSet, cmd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, channelsOf(p))
	return nil
}

// channelView is a channel as listed.
type channelView struct {
	Name    string `json:"name"`
	Release string `json:"release"`
	Default bool   `json:"default,omitempty"`
}

func channelsOf(p *protocol.Product) []channelView {
	out := []channelView{}
	for name, rel := range p.Channels {
		out = append(out, channelView{Name: name, Release: rel, Default: name == p.DefaultChannel})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// isTenantToken reports whether r is made with a tenant's token.
func isTenantToken(r *http.Request) bool {
	switch identityFrom(r).Role {
	case protocol.RoleTenantAdmin, protocol.RoleTenantViewer:
		return true
	}
	return false
}

// checkCustomSpec refuses a raw spec from a tenant token: customers run the
// vendor's products, never a command of their own (API.md).
func checkCustomSpec(r *http.Request, req *protocol.InstanceRequest) error {
	if !isTenantToken(r) {
		return nil
	}
	if !req.Spec.IsZero() {
		return &protocol.Error{Code: protocol.CodePermissionDenied, Field: "spec",
			Message: "tenant tokens create and change instances of a product only: name a product, a plan and parameters, not a spec"}
	}
	if req.Product == "" {
		return protocol.FieldError("product", "is required: name the product the instance runs")
	}
	return nil
}

// checkRegion refuses a spec whose region constraint is not its tenant's.
func checkRegion(t *protocol.Tenant, spec *protocol.Spec) error {
	if t.Region != "" && spec.Constraints.Region != "" && spec.Constraints.Region != t.Region {
		return protocol.FieldError("spec.constraints.region", "tenant %s lives in region %s; its instances cannot run in %s", t.Name, t.Region, spec.Constraints.Region)
	}
	return nil
}
