// Package catalog resolves what an instance of a product runs: the spec
// made from the product's template, the release's command and env, the
// plan's resources and the tenant's typed parameters. The API uses it when
// an instance is created or changed, the rollout controller when it moves
// an instance to another release: one resolution for both.
package catalog

import (
	"slices"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// Resolve makes the spec of an instance of a product: the
// product's template, the release's command and env, the plan's resources,
// the parameters as environment variables (secret ones as secrets). cur is
// the instance being changed, or nil; its secret parameters given as
// "(secret)" keep their values.
func Resolve(snap *state.Snapshot, req *protocol.InstanceRequest, cur *protocol.Instance) (protocol.ProductRef, protocol.Spec, error) {
	var ref protocol.ProductRef
	p := snap.Product(req.Product)
	if p == nil {
		return ref, protocol.Spec{}, protocol.FieldError("product", "unknown product %q", req.Product)
	}
	ref.Product = p.Name
	if req.Plan != "" && len(p.Plans) > 0 && !slices.Contains(p.Plans, req.Plan) {
		return ref, protocol.Spec{}, protocol.FieldError("plan", "product %s is offered in plans %v, not %q", p.Name, p.Plans, req.Plan)
	}
	if req.Plan == "" && len(p.Plans) > 0 {
		return ref, protocol.Spec{}, protocol.FieldError("plan", "is required: product %s is offered in plans %v", p.Name, p.Plans)
	}
	switch {
	case req.Release != "":
		ref.Release = req.Release
	case req.Channel != "" || cur == nil || cur.Channel != "":
		ch := req.Channel
		if ch == "" && cur != nil {
			ch = cur.Channel
		}
		if ch == "" {
			ch = p.DefaultChannel
		}
		if ch == "" {
			return ref, protocol.Spec{}, protocol.FieldError("release", "name a release: product %s has no default channel", p.Name)
		}
		v, ok := p.Channels[ch]
		if !ok {
			return ref, protocol.Spec{}, protocol.FieldError("channel", "product %s has no channel %q", p.Name, ch)
		}
		ref.Channel = ch
		// An instance following a channel keeps its release on updates
		// that do not name one: rollouts move it, not its own changes.
		if cur != nil && cur.Channel == ch && req.Channel == "" {
			v = cur.Release
		}
		ref.Release = v
	default:
		ref.Release = cur.Release
	}
	rel := snap.Release(p.Name, ref.Release)
	if rel == nil {
		return ref, protocol.Spec{}, protocol.FieldError("release", "product %s has no release %q", p.Name, ref.Release)
	}
	if rel.State != protocol.ReleaseAvailable && (cur == nil || cur.Release != rel.Version) {
		return ref, protocol.Spec{}, protocol.FieldError("release", "release %s of %s is %s: choose an available one", rel.Version, p.Name, rel.State)
	}
	if req.Pinned != nil {
		ref.Pinned = *req.Pinned
	} else if cur != nil {
		ref.Pinned = cur.Pinned
	}

	spec := p.Template.Spec()
	if pl := snap.Plan(req.Plan); pl != nil {
		// The plan's resources, not the template's, are what is sold.
		if pl.Resources.CPUMillis > 0 {
			spec.Resources.CPUMillis = pl.Resources.CPUMillis
		}
		if pl.Resources.MemoryMB > 0 {
			spec.Resources.MemoryMB = pl.Resources.MemoryMB
		}
	}
	spec.Version = rel.Version
	spec.Command = append([]string(nil), rel.Command...)
	for k, v := range rel.Env {
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		spec.Env[k] = v
	}
	ref.Parameters = map[string]string{}
	declared := map[string]bool{}
	for i := range p.Parameters {
		prm := &p.Parameters[i]
		declared[prm.Name] = true
		raw, given := req.Parameters[prm.Name]
		var val string
		switch {
		case given:
			v, err := prm.Value(raw)
			if err != nil {
				return ref, spec, err
			}
			val = v
			if prm.Secret && val == "(secret)" && cur != nil {
				if old, ok := cur.Spec.Secrets[prm.Name]; ok {
					val = old
				}
			}
		case cur != nil && cur.Product == p.Name && hasParam(cur, prm):
			val = paramOf(cur, prm)
		case len(prm.Default) > 0:
			v, err := prm.Value(prm.Default)
			if err != nil {
				return ref, spec, err
			}
			val = v
		case prm.Required:
			return ref, spec, protocol.FieldError("parameters."+prm.Name, "is required")
		default:
			continue
		}
		if prm.Secret {
			if spec.Secrets == nil {
				spec.Secrets = map[string]string{}
			}
			spec.Secrets[prm.Name] = val
			ref.Parameters[prm.Name] = "(secret)"
		} else {
			if spec.Env == nil {
				spec.Env = map[string]string{}
			}
			spec.Env[prm.Name] = val
			ref.Parameters[prm.Name] = val
		}
	}
	for k := range req.Parameters {
		if !declared[k] {
			return ref, spec, protocol.FieldError("parameters."+k, "product %s declares no parameter %q", p.Name, k)
		}
	}
	if len(ref.Parameters) == 0 {
		ref.Parameters = nil
	}
	return ref, spec, nil
}

func hasParam(in *protocol.Instance, prm *protocol.Parameter) bool {
	if prm.Secret {
		_, ok := in.Spec.Secrets[prm.Name]
		return ok
	}
	_, ok := in.Parameters[prm.Name]
	return ok
}

func paramOf(in *protocol.Instance, prm *protocol.Parameter) string {
	if prm.Secret {
		return in.Spec.Secrets[prm.Name]
	}
	return in.Parameters[prm.Name]
}
