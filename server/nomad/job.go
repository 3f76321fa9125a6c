package nomad

import (
	"regexp"
	"sort"
	"strings"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/drover-dev/drover/protocol"
)

// Drivers that run a command as a process, as Drover's agents do.
var drivers = map[string]bool{"raw_exec": true, "exec": true}

// instanceRequest maps a Nomad job onto the instance it describes
// (docs/NOMAD.md): a service job with one group of one raw_exec or exec
// task. Anything the mapping would drop is refused, naming it.
func instanceRequest(job *nomadapi.Job) (*protocol.InstanceRequest, error) {
	if job.ID == nil || *job.ID == "" {
		return nil, protocol.FieldError("Job.ID", "is required")
	}
	if t := deref(job.Type); t != "" && t != "service" {
		return nil, unsupported("job type %q (only service jobs)", t)
	}
	switch {
	case job.Periodic != nil:
		return nil, unsupported("periodic")
	case job.ParameterizedJob != nil:
		return nil, unsupported("parameterized")
	case job.Multiregion != nil:
		return nil, unsupported("multiregion")
	case len(job.Affinities) > 0:
		return nil, unsupported("affinity")
	case len(job.Spreads) > 0:
		return nil, unsupported("spread")
	case len(job.TaskGroups) != 1:
		return nil, unsupported("%d task groups (one group of one task per job)", len(job.TaskGroups))
	}
	g := job.TaskGroups[0]
	gname := deref(g.Name)
	switch {
	case len(g.Tasks) != 1:
		return nil, unsupported("%d tasks in group %q (one task per job)", len(g.Tasks), gname)
	case len(g.Volumes) > 0:
		return nil, unsupported("volume in group %q", gname)
	case len(g.Affinities) > 0:
		return nil, unsupported("affinity in group %q", gname)
	case len(g.Spreads) > 0:
		return nil, unsupported("spread in group %q", gname)
	case g.Consul != nil:
		return nil, unsupported("consul in group %q", gname)
	case len(g.Networks) > 1:
		return nil, unsupported("several networks in group %q", gname)
	}
	t := g.Tasks[0]
	switch {
	case !drivers[t.Driver]:
		return nil, unsupported("driver %q of task %q (raw_exec and exec only)", t.Driver, t.Name)
	case len(t.Templates) > 0:
		return nil, unsupported("template in task %q", t.Name)
	case t.Vault != nil:
		return nil, unsupported("vault in task %q", t.Name)
	case len(t.Artifacts) > 0:
		return nil, unsupported("artifact in task %q", t.Name)
	case len(t.VolumeMounts) > 0:
		return nil, unsupported("volume_mount in task %q", t.Name)
	case t.Lifecycle != nil:
		return nil, unsupported("lifecycle in task %q", t.Name)
	case t.Consul != nil:
		return nil, unsupported("consul in task %q", t.Name)
	case len(t.Secrets) > 0:
		return nil, unsupported("secret in task %q", t.Name)
	case t.CSIPluginConfig != nil:
		return nil, unsupported("csi_plugin in task %q", t.Name)
	case len(t.Affinities) > 0:
		return nil, unsupported("affinity in task %q", t.Name)
	case t.User != "":
		return nil, unsupported("user in task %q", t.Name)
	}

	spec := protocol.Spec{Env: t.Env}
	cmd, err := command(t)
	if err != nil {
		return nil, err
	}
	spec.Command = cmd

	networks := g.Networks
	if t.Resources != nil {
		if len(t.Resources.Networks) > 0 {
			networks = append(networks, t.Resources.Networks...)
		}
		if len(t.Resources.Devices) > 0 {
			return nil, unsupported("device in task %q", t.Name)
		}
		if t.Resources.Cores != nil && *t.Resources.Cores > 0 {
			spec.Resources.CPUMillis = int64(*t.Resources.Cores) * 1000
		}
		if t.Resources.CPU != nil {
			spec.Resources.CPUMillis = int64(*t.Resources.CPU)
		}
		if t.Resources.MemoryMB != nil {
			spec.Resources.MemoryMB = int64(*t.Resources.MemoryMB)
		}
	}
	for _, n := range networks {
		if n.Mode != "" && n.Mode != "host" {
			return nil, unsupported("network mode %q", n.Mode)
		}
		if len(n.ReservedPorts) > 0 {
			return nil, unsupported("static port %q", n.ReservedPorts[0].Label)
		}
		for _, p := range n.DynamicPorts {
			spec.Ports = append(spec.Ports, p.Label)
		}
	}

	if u := job.Update; u != nil || g.Update != nil {
		if g.Update != nil {
			u = g.Update
		}
		spec.Update = protocol.UpdateStrategy{
			MaxParallel: deref(u.MaxParallel), MinHealthyTime: protocol.Duration(deref(u.MinHealthyTime)),
			HealthyDeadline: protocol.Duration(deref(u.HealthyDeadline)), AutoRollback: deref(u.AutoRevert),
			Canaries: deref(u.Canary), AutoPromote: deref(u.AutoPromote),
		}
	}
	rp := g.RestartPolicy
	if t.RestartPolicy != nil {
		rp = t.RestartPolicy
	}
	if rp != nil {
		spec.Restart = protocol.RestartPolicy{Policy: protocol.RestartAlways, MaxAttempts: deref(rp.Attempts),
			Window: protocol.Duration(deref(rp.Interval)), Delay: protocol.Duration(deref(rp.Delay))}
	}
	if t.KillTimeout != nil || t.KillSignal != "" {
		spec.Stop = protocol.StopPolicy{Signal: t.KillSignal, Timeout: protocol.Duration(deref(t.KillTimeout))}
	}
	if spec.Health, err = health(append(append([]*nomadapi.Service{}, g.Services...), t.Services...), spec.Ports); err != nil {
		return nil, err
	}
	if spec.Constraints, err = constraints(job.Constraints, g.Constraints, t.Constraints); err != nil {
		return nil, err
	}
	spec.Version = job.Meta["version"]
	req := &protocol.InstanceRequest{Name: *job.ID, Spec: spec, Replicas: g.Count}
	return req, nil
}

// nomadVar matches the port variables of Nomad's runtime environment.
var nomadVar = regexp.MustCompile(`\$\{NOMAD_(HOST_)?PORT_([A-Za-z0-9_-]+)\}`)

// command is the task's command and args, with ${NOMAD_PORT_label} and
// ${NOMAD_HOST_PORT_label} turned into Drover's ${PORT_LABEL}.
func command(t *nomadapi.Task) ([]string, error) {
	var argv []string
	for k, v := range t.Config {
		switch k {
		case "command":
			s, ok := v.(string)
			if !ok || s == "" {
				return nil, protocol.FieldError("config.command", "must be a string")
			}
			argv = append([]string{s}, argv...)
		case "args":
			list, ok := v.([]any)
			if !ok {
				return nil, protocol.FieldError("config.args", "must be a list of strings")
			}
			for _, a := range list {
				s, ok := a.(string)
				if !ok {
					return nil, protocol.FieldError("config.args", "must be a list of strings")
				}
				argv = append(argv, s)
			}
		default:
			return nil, unsupported("task config %q of task %q", k, t.Name)
		}
	}
	if len(argv) == 0 || t.Config["command"] == nil {
		return nil, protocol.FieldError("config.command", "is required")
	}
	for i, a := range argv {
		argv[i] = nomadVar.ReplaceAllStringFunc(a, func(m string) string {
			label := nomadVar.FindStringSubmatch(m)[2]
			return "${PORT_" + strings.ToUpper(strings.ReplaceAll(label, "-", "_")) + "}"
		})
	}
	return argv, nil
}

// health is the check of the job's services: Drover checks one port per
// instance, so one http or tcp check.
func health(services []*nomadapi.Service, ports []string) (*protocol.HealthCheck, error) {
	var out *protocol.HealthCheck
	for _, s := range services {
		if s.Connect != nil {
			return nil, unsupported("consul connect in service %q", s.Name)
		}
		for _, c := range s.Checks {
			if c.Type != protocol.HealthHTTP && c.Type != protocol.HealthTCP {
				return nil, unsupported("check type %q in service %q (http and tcp only)", c.Type, s.Name)
			}
			if out != nil {
				return nil, unsupported("several checks (one http or tcp check per job)")
			}
			port := c.PortLabel
			if port == "" {
				port = s.PortLabel
			}
			if port == "" && len(ports) > 0 {
				port = ports[0]
			}
			out = &protocol.HealthCheck{Type: c.Type, Port: port, Path: c.Path,
				Interval: protocol.Duration(c.Interval), Timeout: protocol.Duration(c.Timeout)}
			if c.SuccessBeforePassing > 0 {
				out.HealthyThreshold = c.SuccessBeforePassing
			}
			if c.FailuresBeforeCritical > 0 {
				out.UnhealthyThreshold = c.FailuresBeforeCritical
			}
		}
	}
	return out, nil
}

// constraints maps equality constraints on the node's region and meta.
func constraints(sets ...[]*nomadapi.Constraint) (protocol.Constraints, error) {
	var out protocol.Constraints
	for _, set := range sets {
		for _, c := range set {
			if c.Operand != "" && c.Operand != "=" && c.Operand != "==" {
				return out, unsupported("constraint operator %q on %s", c.Operand, c.LTarget)
			}
			switch {
			case c.LTarget == "${node.region}" || c.LTarget == "${attr.region}":
				out.Region = c.RTarget
			case strings.HasPrefix(c.LTarget, "${meta.") && strings.HasSuffix(c.LTarget, "}"):
				if out.Labels == nil {
					out.Labels = map[string]string{}
				}
				out.Labels[strings.TrimSuffix(strings.TrimPrefix(c.LTarget, "${meta."), "}")] = c.RTarget
			default:
				return out, unsupported("constraint on %s (${node.region} and ${meta.KEY} only)", c.LTarget)
			}
		}
	}
	return out, nil
}

// groupName is the task group and task name of an instance's job: the
// instance's name, as Nomad's own job init names them after the job.
func groupName(in *protocol.Instance) string { return in.Name }

// jobOf is the Nomad job an instance is, the inverse of instanceRequest.
func (h *Handler) jobOf(in *protocol.Instance, st *protocol.InstanceStatus) *nomadapi.Job {
	s := in.Spec
	name := groupName(in)
	cfg := map[string]any{}
	if len(s.Command) > 0 {
		args := make([]any, 0, len(s.Command)-1)
		for _, a := range s.Command[1:] {
			args = append(args, a)
		}
		cfg["command"], cfg["args"] = s.Command[0], args
	}
	cpu, mem := int(s.Resources.CPUMillis), int(s.Resources.MemoryMB)
	task := &nomadapi.Task{Name: name, Driver: "raw_exec", Config: cfg, Env: s.Env,
		Resources: &nomadapi.Resources{CPU: &cpu, MemoryMB: &mem}, KillSignal: s.Stop.Signal,
		KillTimeout: ptr(time.Duration(s.Stop.Timeout))}
	g := &nomadapi.TaskGroup{Name: &name, Count: ptr(in.Replicas), Tasks: []*nomadapi.Task{task},
		RestartPolicy: &nomadapi.RestartPolicy{Attempts: ptr(s.Restart.MaxAttempts), Interval: ptr(time.Duration(s.Restart.Window)),
			Delay: ptr(time.Duration(s.Restart.Delay)), Mode: ptr("delay")},
		Update: &nomadapi.UpdateStrategy{MaxParallel: ptr(s.Update.MaxParallel), MinHealthyTime: ptr(time.Duration(s.Update.MinHealthyTime)),
			HealthyDeadline: ptr(time.Duration(s.Update.HealthyDeadline)), AutoRevert: ptr(s.Update.AutoRollback),
			Canary: ptr(s.Update.Canaries), AutoPromote: ptr(s.Update.AutoPromote)},
	}
	if len(s.Ports) > 0 {
		n := &nomadapi.NetworkResource{}
		for _, p := range s.Ports {
			n.DynamicPorts = append(n.DynamicPorts, nomadapi.Port{Label: p})
		}
		g.Networks = []*nomadapi.NetworkResource{n}
	}
	if hc := s.Health; hc != nil && (hc.Type == protocol.HealthHTTP || hc.Type == protocol.HealthTCP) {
		g.Services = []*nomadapi.Service{{Name: in.Name, PortLabel: hc.Port, Provider: "nomad", Checks: []nomadapi.ServiceCheck{{
			Type: hc.Type, Path: hc.Path, PortLabel: hc.Port, Interval: time.Duration(hc.Interval), Timeout: time.Duration(hc.Timeout)}}}}
	}
	var cons []*nomadapi.Constraint
	if s.Constraints.Region != "" {
		cons = append(cons, &nomadapi.Constraint{LTarget: "${node.region}", RTarget: s.Constraints.Region, Operand: "="})
	}
	keys := make([]string, 0, len(s.Constraints.Labels))
	for k := range s.Constraints.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cons = append(cons, &nomadapi.Constraint{LTarget: "${meta." + k + "}", RTarget: s.Constraints.Labels[k], Operand: "="})
	}
	g.Constraints = cons
	status, _ := jobStatus(in, st)
	job := &nomadapi.Job{
		Region: ptr(h.cfg.Region), Namespace: ptr(h.namespaceOf(in.Tenant)), ID: ptr(in.Name), Name: ptr(in.Name),
		Type: ptr("service"), Priority: ptr(50), Datacenters: []string{"*"}, TaskGroups: []*nomadapi.TaskGroup{g},
		Stop: ptr(in.Stopped), Status: ptr(status), Stable: ptr(in.StableVersion == in.Version),
		Version: ptr(in.Version), SubmitTime: ptr(in.UpdatedAt.UnixNano()),
		CreateIndex: ptr(in.CreateIndex), ModifyIndex: ptr(in.ModifyIndex), JobModifyIndex: ptr(in.ModifyIndex),
	}
	if s.Version != "" {
		job.Meta = map[string]string{"version": s.Version}
	}
	return job
}

// jobStatus is Nomad's status of a job: pending until a replica runs,
// running while any should, dead once stopped.
func jobStatus(in *protocol.Instance, st *protocol.InstanceStatus) (string, string) {
	switch {
	case in.Stopped:
		return "dead", "stopped"
	case st.Replicas.Running > 0:
		return "running", st.State
	}
	return "pending", st.State
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func ptr[T any](v T) *T { return &v }
