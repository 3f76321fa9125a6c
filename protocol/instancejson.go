package protocol

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AppendInstanceJSON appends in as encoding/json marshals it, byte for
// byte, without reflection: a list of 10,000 instances spent two thirds of
// its time in encoding/json walking the same types again for every
// instance. A field added to Instance or to a type within it must be added
// here too; TestAppendInstanceJSON fails until it is.
func AppendInstanceJSON(b []byte, in *Instance) ([]byte, error) {
	b, err := AppendInstanceHead(b, in)
	if err != nil {
		return b, err
	}
	if b, err = AppendInstanceStatus(b, in.Status); err != nil {
		return b, err
	}
	return AppendInstanceTail(b, in)
}

// AppendInstanceHead appends the members of in's JSON object that come
// before its status, the object left open. Head, status and tail are
// apart so that a list can keep the head and tail of an instance that has
// not changed and make only its status again.
func AppendInstanceHead(b []byte, in *Instance) ([]byte, error) {
	o := jsonObject{b: append(b, '{')}
	o.str("id", in.ID)
	o.str("tenant", in.Tenant)
	o.str("name", in.Name)
	o.str("environment", in.Environment)
	o.strOmit("plan", in.Plan)
	o.int("replicas", int64(in.Replicas))
	o.bool("stopped", in.Stopped)
	o.strsOmit("domains", in.Domains)
	o.strsOmit("endpoints", in.Endpoints)
	o.spec("spec", &in.Spec)
	o.strOmit("product", in.Product)
	o.strOmit("release", in.Release)
	o.strOmit("channel", in.Channel)
	o.boolOmit("pinned", in.Pinned)
	o.strMapOmit("parameters", in.Parameters)
	o.uint("version", in.Version)
	o.uint("stable_version", in.StableVersion)
	o.uintOmit("restart_epoch", in.RestartEpoch)
	if in.Deployment != nil {
		o.deployment("deployment", in.Deployment)
	}
	return o.b, o.err
}

// AppendInstanceStatus appends st as the member "status" of an object
// AppendInstanceHead began; nothing when st is nil.
func AppendInstanceStatus(b []byte, st *InstanceStatus) ([]byte, error) {
	if st == nil {
		return b, nil
	}
	o := jsonObject{b: b, more: true}
	s := o.begin("status")
	s.str("state", st.State)
	c := s.begin("replicas")
	c.int("desired", int64(st.Replicas.Desired))
	c.int("running", int64(st.Replicas.Running))
	c.int("healthy", int64(st.Replicas.Healthy))
	c.int("pending", int64(st.Replicas.Pending))
	c.int("failed", int64(st.Replicas.Failed))
	s.end(&c)
	if st.Deployment != nil {
		s.deployment("deployment", st.Deployment)
	}
	o.end(&s)
	return o.b, o.err
}

// AppendInstanceTail appends the members of in's JSON object after its
// status, and closes the object.
func AppendInstanceTail(b []byte, in *Instance) ([]byte, error) {
	o := jsonObject{b: b, more: true}
	o.time("created_at", in.CreatedAt)
	o.time("updated_at", in.UpdatedAt)
	o.uint("create_index", in.CreateIndex)
	o.uint("modify_index", in.ModifyIndex)
	if o.err != nil {
		return b, o.err
	}
	return append(o.b, '}'), nil
}

func (o *jsonObject) spec(n string, s *Spec) {
	c := o.begin(n)
	c.strOmit("version", s.Version)
	c.strs("command", s.Command)
	c.strMapOmit("env", s.Env)
	c.strMapOmit("secrets", s.Secrets)
	c.strsOmit("ports", s.Ports)

	r := c.begin("resources")
	r.intOmit("cpu_millis", s.Resources.CPUMillis)
	r.intOmit("memory_mb", s.Resources.MemoryMB)
	c.end(&r)

	if h := s.Health; h != nil {
		hc := c.begin("health")
		hc.str("type", h.Type)
		hc.strOmit("port", h.Port)
		hc.strOmit("path", h.Path)
		hc.strsOmit("command", h.Command)
		hc.durationOmit("interval", h.Interval)
		hc.durationOmit("timeout", h.Timeout)
		hc.intOmit("healthy_threshold", int64(h.HealthyThreshold))
		hc.intOmit("unhealthy_threshold", int64(h.UnhealthyThreshold))
		hc.durationOmit("grace", h.Grace)
		c.end(&hc)
	}

	rp := c.begin("restart")
	rp.strOmit("policy", s.Restart.Policy)
	rp.intOmit("max_attempts", int64(s.Restart.MaxAttempts))
	rp.durationOmit("window", s.Restart.Window)
	rp.durationOmit("delay", s.Restart.Delay)
	c.end(&rp)

	u := c.begin("update")
	u.intOmit("max_parallel", int64(s.Update.MaxParallel))
	u.durationOmit("min_healthy_time", s.Update.MinHealthyTime)
	u.durationOmit("healthy_deadline", s.Update.HealthyDeadline)
	u.bool("auto_rollback", s.Update.AutoRollback)
	u.intOmit("canaries", int64(s.Update.Canaries))
	u.boolOmit("auto_promote", s.Update.AutoPromote)
	c.end(&u)

	st := c.begin("stop")
	st.strOmit("signal", s.Stop.Signal)
	st.durationOmit("timeout", s.Stop.Timeout)
	if s.Stop.Drain != nil {
		st.name("drain")
		st.b = s.Stop.Drain.appendJSON(st.b)
	}
	c.end(&st)

	if s.Route != nil {
		rt := c.begin("route")
		rt.strOmit("port", s.Route.Port)
		c.end(&rt)
	}

	cs := c.begin("constraints")
	cs.strOmit("region", s.Constraints.Region)
	cs.strMapOmit("labels", s.Constraints.Labels)
	c.end(&cs)

	c.strOmit("user", s.User)
	o.end(&c)
}

func (o *jsonObject) deployment(n string, d *Deployment) {
	c := o.begin(n)
	c.str("id", d.ID)
	c.uint("from_version", d.FromVersion)
	c.uint("to_version", d.ToVersion)
	c.str("state", d.State)
	c.strOmit("message", d.Message)
	c.intOmit("canaries", int64(d.Canaries))
	c.bool("promoted", d.Promoted)
	c.boolOmit("rollback", d.Rollback)
	c.time("started_at", d.StartedAt)
	c.time("deadline", d.Deadline)
	c.time("updated_at", d.UpdatedAt)
	o.end(&c)
}

// jsonObject appends the members of a JSON object, the comma between
// them, and keeps the first error (of a time out of RFC 3339's range).
type jsonObject struct {
	b    []byte
	more bool
	err  error
}

// begin starts an object as the value of member n; end closes it.
func (o *jsonObject) begin(n string) jsonObject {
	o.name(n)
	return jsonObject{b: append(o.b, '{')}
}

// end closes c, begun by o.begin, and takes its bytes and error back.
func (o *jsonObject) end(c *jsonObject) {
	o.b = append(c.b, '}')
	if o.err == nil {
		o.err = c.err
	}
}

// name appends a member's name; its value follows.
func (o *jsonObject) name(n string) {
	if o.more {
		o.b = append(o.b, ',')
	}
	o.more = true
	o.b = append(o.b, '"')
	o.b = append(o.b, n...)
	o.b = append(o.b, '"', ':')
}

func (o *jsonObject) str(n, v string) {
	o.name(n)
	o.b = appendJSONString(o.b, v)
}

func (o *jsonObject) strOmit(n, v string) {
	if v != "" {
		o.str(n, v)
	}
}

func (o *jsonObject) int(n string, v int64) {
	o.name(n)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *jsonObject) intOmit(n string, v int64) {
	if v != 0 {
		o.int(n, v)
	}
}

func (o *jsonObject) uint(n string, v uint64) {
	o.name(n)
	o.b = strconv.AppendUint(o.b, v, 10)
}

func (o *jsonObject) bool(n string, v bool) {
	o.name(n)
	o.b = strconv.AppendBool(o.b, v)
}

func (o *jsonObject) uintOmit(n string, v uint64) {
	if v != 0 {
		o.uint(n, v)
	}
}

func (o *jsonObject) boolOmit(n string, v bool) {
	if v {
		o.bool(n, v)
	}
}

func (o *jsonObject) durationOmit(n string, d Duration) {
	if d != 0 {
		o.name(n)
		o.b = d.appendJSON(o.b)
	}
}

// strs appends a list of strings; nil is null, as encoding/json has it.
func (o *jsonObject) strs(n string, v []string) {
	o.name(n)
	if v == nil {
		o.b = append(o.b, "null"...)
		return
	}
	o.b = append(o.b, '[')
	for i, s := range v {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendJSONString(o.b, s)
	}
	o.b = append(o.b, ']')
}

func (o *jsonObject) strsOmit(n string, v []string) {
	if len(v) > 0 {
		o.strs(n, v)
	}
}

// strMapOmit appends a map by its sorted keys, as encoding/json does.
func (o *jsonObject) strMapOmit(n string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	o.name(n)
	o.b = append(o.b, '{')
	for i, k := range keys {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendJSONString(o.b, k)
		o.b = append(o.b, ':')
		o.b = appendJSONString(o.b, m[k])
	}
	o.b = append(o.b, '}')
}

// time appends t as time.Time's MarshalJSON writes it.
func (o *jsonObject) time(n string, t time.Time) {
	o.name(n)
	o.b = append(o.b, '"')
	b, err := t.AppendText(o.b)
	if err != nil && o.err == nil {
		o.err = err
	}
	o.b = append(b, '"')
}

// appendJSONString appends s quoted as encoding/json quotes it: plain
// ASCII here, anything it would escape (HTML characters, control
// characters, non-ASCII) through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			// A copy, so that s (and the instance it is in) does not
			// escape to the heap through the interface.
			q, _ := json.Marshal(strings.Clone(s)) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
