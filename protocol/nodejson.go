package protocol

import (
	"fmt"
	"math"
	"strconv"
)

// AppendNodeJSON appends n as encoding/json marshals it, byte for byte,
// without reflection, as AppendInstanceJSON does for instances: a list of
// 10,000 nodes spent tens of milliseconds of the leader's CPU in
// encoding/json. A field added to Node or to a type within it must be added
// here too; TestAppendNodeJSON fails until it is.
func AppendNodeJSON(b []byte, n *Node) ([]byte, error) {
	o := jsonObject{b: append(b, '{')}
	o.str("id", n.ID)
	o.str("name", n.Name)
	o.strOmit("region", n.Region)
	o.strMapOmit("labels", n.Labels)
	o.str("status", n.Status)
	o.bool("eligible", n.Eligible)

	r := o.begin("resources")
	r.int("cpu_millis", n.Resources.CPUMillis)
	r.int("memory_mb", n.Resources.MemoryMB)
	r.int("disk_mb", n.Resources.DiskMB)
	r.int("free_cpu_millis", n.Resources.FreeCPUMillis)
	r.int("free_memory_mb", n.Resources.FreeMemoryMB)
	r.int("free_disk_mb", n.Resources.FreeDiskMB)
	o.end(&r)

	f := o.begin("facts")
	f.strOmit("hostname", n.Facts.Hostname)
	f.strOmit("os", n.Facts.OS)
	f.strOmit("platform", n.Facts.Platform)
	f.strOmit("kernel", n.Facts.Kernel)
	f.strOmit("arch", n.Facts.Arch)
	f.intOmit("cpu_cores", int64(n.Facts.CPUCores))
	if n.Facts.CPUMHz != 0 {
		f.float("cpu_mhz", n.Facts.CPUMHz)
	}
	f.strOmit("agent_version", n.Facts.AgentVersion)
	f.strOmit("cgroups", n.Facts.Cgroups)
	f.bool("limits", n.Facts.Limits)
	f.strOmit("limits_reason", n.Facts.LimitsReason)
	o.end(&f)

	p := o.begin("port_range")
	p.int("lo", int64(n.PortRange.Lo))
	p.int("hi", int64(n.PortRange.Hi))
	o.end(&p)

	if v := n.Reserved; v != nil {
		c := o.begin("reserved")
		c.intOmit("cpu_millis", v.CPUMillis)
		c.intOmit("memory_mb", v.MemoryMB)
		c.intOmit("ports", int64(v.Ports))
		o.end(&c)
	}
	o.strOmit("address", n.Address)
	if d := n.Drain; d != nil {
		c := o.begin("drain")
		c.time("deadline", d.Deadline)
		c.time("started_at", d.StartedAt)
		o.end(&c)
	}
	o.time("last_seen", n.LastSeen)
	if l := n.Load; l != nil {
		c := o.begin("load")
		c.float("cpu_percent", l.CPUPercent)
		c.int("memory_used_mb", l.MemoryUsedMB)
		c.int("disk_used_mb", l.DiskUsedMB)
		c.float("load1", l.Load1)
		o.end(&c)
	}
	o.boolOmit("revoked", n.Revoked)
	o.uint("create_index", n.CreateIndex)
	o.uint("modify_index", n.ModifyIndex)
	if o.err != nil {
		return b, o.err
	}
	return append(o.b, '}'), nil
}

// float appends v as encoding/json writes a float64: the shortest form
// that reads back as v, in exponent form below 1e-6 and from 1e21, with
// no leading zero in a negative exponent. NaN and infinities are an error,
// as encoding/json has them.
func (o *jsonObject) float(n string, v float64) {
	o.name(n)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		if o.err == nil {
			o.err = fmt.Errorf("json: unsupported value: %s", strconv.FormatFloat(v, 'g', -1, 64))
		}
		o.b = append(o.b, '0')
		return
	}
	format := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	o.b = strconv.AppendFloat(o.b, v, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9
		if k := len(o.b); k >= 4 && o.b[k-4] == 'e' && o.b[k-3] == '-' && o.b[k-2] == '0' {
			o.b[k-2] = o.b[k-1]
			o.b = o.b[:k-1]
		}
	}
}
