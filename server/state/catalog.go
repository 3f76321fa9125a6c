package state

// The vendor's catalogue: products, their releases and channels.

import (
	"maps"

	"github.com/drover-dev/drover/protocol"
)

func (w *writer) productUpsert(c *ProductUpsert) error {
	p := c.Product
	if old := w.snap().Product(p.Name); old != nil {
		p.CreatedAt, p.CreateIndex = old.CreatedAt, old.CreateIndex
		p.Channels = old.Channels // set one by one, with channel.set
	} else {
		p.CreatedAt, p.CreateIndex = w.cmd.Time, w.index
		p.Channels = nil
	}
	for _, plan := range p.Plans {
		if w.snap().Plan(plan) == nil {
			return protocol.FieldError("plans", "unknown plan %q", plan)
		}
	}
	p.ModifyIndex = w.index
	w.insert(tableProducts, &p)
	return nil
}

func (w *writer) productDelete(c *NameBody) error {
	p := w.snap().Product(c.Name)
	if p == nil {
		return protocol.NotFound("product", c.Name)
	}
	if ins := w.snap().ProductInstances(c.Name); len(ins) > 0 {
		return protocol.Errorf(protocol.CodeConflict, "product %q has %s (%s, ...); delete them first", c.Name, protocol.Count(len(ins), "instance"), ins[0].ID)
	}
	for _, r := range w.snap().Releases(c.Name) {
		w.delete(tableReleases, r)
	}
	for _, f := range w.snap().Flags(c.Name) {
		w.dropFlag(f)
	}
	w.delete(tableProducts, p)
	return nil
}

func (w *writer) releasePublish(c *ReleasePublish) error {
	r := c.Release
	if w.snap().Product(r.Product) == nil {
		return protocol.NotFound("product", r.Product)
	}
	if w.snap().Release(r.Product, r.Version) != nil {
		return protocol.Errorf(protocol.CodeConflict, "release %s of %s already exists; releases are immutable, publish a new version", r.Version, r.Product)
	}
	if r.State == "" {
		r.State = protocol.ReleaseAvailable
	}
	r.CreatedAt, r.CreateIndex, r.ModifyIndex = w.cmd.Time, w.index, w.index
	w.insert(tableReleases, &r)
	return nil
}

func (w *writer) releaseUpdate(c *ReleaseUpdate) error {
	old := w.snap().Release(c.Product, c.Version)
	if old == nil {
		return protocol.NotFound("release", c.Product+" "+c.Version)
	}
	r := *old
	if c.Patch.State != nil {
		r.State = *c.Patch.State
	}
	if c.Patch.Notes != nil {
		r.Notes = *c.Patch.Notes
	}
	r.ModifyIndex = w.index
	w.insert(tableReleases, &r)
	return nil
}

func (w *writer) channelSet(c *ChannelSet) error {
	old := w.snap().Product(c.Product)
	if old == nil {
		return protocol.NotFound("product", c.Product)
	}
	r := w.snap().Release(c.Product, c.Release)
	if r == nil {
		return protocol.FieldError("release", "product %s has no release %q", c.Product, c.Release)
	}
	if r.State != protocol.ReleaseAvailable {
		return protocol.FieldError("release", "release %s is %s; a channel points at an available release", c.Release, r.State)
	}
	p := *old
	if len(p.Channels) >= protocol.MaxChannels && p.Channels[c.Channel] == "" {
		return protocol.FieldError("channel", "a product has at most %d channels", protocol.MaxChannels)
	}
	p.Channels = maps.Clone(p.Channels)
	if p.Channels == nil {
		p.Channels = map[string]string{}
	}
	p.Channels[c.Channel] = c.Release
	p.ModifyIndex = w.index
	w.insert(tableProducts, &p)
	return nil
}

// checkRelease checks, as the entry is applied, what the API checked when
// it resolved an instance of a product: the product and release exist, a
// release it moves to is available and accepts an upgrade from the one it
// runs. A change that keeps the release keeps working on a deprecated one.
func (w *writer) checkRelease(old, in *protocol.Instance) error {
	if in.Product == "" {
		return nil
	}
	if w.snap().Product(in.Product) == nil {
		return protocol.FieldError("product", "unknown product %q", in.Product)
	}
	r := w.snap().Release(in.Product, in.Release)
	if r == nil {
		return protocol.FieldError("release", "product %s has no release %q", in.Product, in.Release)
	}
	if old != nil && old.Product == in.Product && old.Release == in.Release {
		return nil
	}
	if r.State != protocol.ReleaseAvailable {
		return protocol.FieldError("release", "release %s of %s is %s: no new instances or upgrades", r.Version, r.Product, r.State)
	}
	if old != nil && old.Product == in.Product && old.Release != "" {
		ok, err := r.Upgradable(old.Release)
		if err != nil {
			return err
		}
		if !ok {
			return protocol.FieldError("release", "release %s accepts upgrades from %s only; %s runs %s", r.Version, r.UpgradeFrom, old.ID, old.Release)
		}
	}
	return nil
}
