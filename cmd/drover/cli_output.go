package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover-dev/drover/protocol"
	"gopkg.in/yaml.v3"
)

// show prints v as JSON with -o json, or calls table otherwise.
func (c *cli) show(v any, table func(w io.Writer)) error {
	if c.json {
		return c.doc(v)
	}
	table(c.out)
	return nil
}

// doc writes v as one document: indented JSON, or YAML with -o yaml.
func (c *cli) doc(v any) error {
	if c.yaml {
		return writeYAMLDoc(c.out, v)
	}
	return writeJSONDoc(c.out, v)
}

// writeJSONDoc writes v as one indented JSON document.
func writeJSONDoc(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeYAMLDoc writes v as YAML: the same document as JSON (the API's
// field names, in its order), in block style.
func writeYAMLDoc(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil { // JSON is YAML
		return err
	}
	blockStyle(&doc)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	return enc.Close()
}

// blockStyle drops the flow style ({...}, [...], "...") JSON was read in.
func blockStyle(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!str" {
		n.Style = 0
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// table writes aligned columns. Empty cells show as "-".
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		if c == "" {
			c = "-"
		}
		// A tab or newline in a value (a message) would break the columns.
		cols[i] = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

func (t *table) flush() { _ = t.tw.Flush() }

// fields writes "Key: value" lines, aligned.
func fields(w io.Writer, kv ...string) {
	t := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(t, "%s:\t%s\n", kv[i], v)
	}
	_ = t.Flush()
}

// --- values ---

// shortID is the first 8 characters of a generated id, as tables show
// them; commands take any unique prefix (-o json shows whole ids).
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// count says n of a noun: "1 replica", "2 replicas", "0 replicas".
func count(n int, noun string) string { return protocol.Count(n, noun) }

func itoa(n int) string     { return strconv.Itoa(n) }
func utoa(n uint64) string  { return strconv.FormatUint(n, 10) }
func i64toa(n int64) string { return strconv.FormatInt(n, 10) }
func yesNo(b bool) string   { return map[bool]string{true: "yes", false: "no"}[b] }
func ratio(a, b int) string { return itoa(a) + "/" + itoa(b) }
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// kvList writes a map as "k=v,k=v" in key order.
func kvList(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// portList writes ports as "name:port,..." in name order.
func portList(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+":"+itoa(m[k]))
	}
	return strings.Join(parts, ",")
}

// age is how long ago t was, short: "45s", "12m", "3h", "2d".
func age(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return itoa(int(d/time.Hour)) + "h"
	default:
		return itoa(int(d/(24*time.Hour))) + "d"
	}
}

// stamp is a time as the tables print it: local, to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// instanceVersion is "3" or "3 (1.4.2)": the counter and the spec's label.
func instanceVersion(in *protocol.Instance) string {
	if in.Spec.Version == "" {
		return utoa(in.Version)
	}
	return utoa(in.Version) + " (" + in.Spec.Version + ")"
}

func instanceState(in *protocol.Instance) string {
	if in.Status == nil {
		return ""
	}
	return in.Status.State
}

func healthyDesired(in *protocol.Instance) string {
	if in.Status == nil {
		return ""
	}
	return ratio(in.Status.Replicas.Healthy, in.Status.Replicas.Desired)
}

// --- tables of the API's objects ---

func instancesTable(w io.Writer, ins []*protocol.Instance) {
	t := newTable(w, "ID", "ENV", "VERSION", "STATE", "HEALTHY/DESIRED")
	for _, in := range ins {
		t.row(in.ID, in.Environment, instanceVersion(in), instanceState(in), healthyDesired(in))
	}
	t.flush()
}

func replicasTable(w io.Writer, reps []*protocol.Replica, now time.Time) {
	t := newTable(w, "ID", "NODE", "STATE", "VERSION", "PORTS", "RESTARTS", "AGE", "MESSAGE")
	for _, r := range reps {
		state := r.State
		if r.Desired == protocol.DesiredStop && !r.Terminal() {
			state += " (stopping)"
		}
		t.row(shortID(r.ID), shortID(r.Node), state, utoa(r.Version), portList(r.Ports), itoa(r.Restarts), age(r.StartedAt, now), r.Message)
	}
	t.flush()
}

func eventsTable(w io.Writer, evs []*protocol.Event) {
	t := newTable(w, "TIME", "TYPE", "REPLICA", "MESSAGE")
	for _, e := range evs {
		t.row(stamp(e.Time), e.Type, e.Replica, e.Message)
	}
	t.flush()
}

// capacity is "free/total" with a unit.
func capacity(free, total int64, unit string) string {
	return i64toa(free) + "/" + i64toa(total) + unit
}

func nodeStatus(n *protocol.Node) string {
	if n.Revoked {
		return n.Status + " (revoked)"
	}
	return n.Status
}

func nodesTable(w io.Writer, nodes []*protocol.Node) {
	t := newTable(w, "ID", "NAME", "REGION", "STATUS", "ELIGIBLE", "CPU FREE/TOTAL", "MEMORY FREE/TOTAL")
	for _, n := range nodes {
		t.row(shortID(n.ID), n.Name, n.Region, nodeStatus(n), yesNo(n.Eligible),
			capacity(n.Resources.FreeCPUMillis, n.Resources.CPUMillis, "m"),
			capacity(n.Resources.FreeMemoryMB, n.Resources.MemoryMB, "MB"))
	}
	t.flush()
}

func membersTable(w io.Writer, ms []protocol.Member) {
	t := newTable(w, "ID", "HTTP ADDRESS", "RAFT ADDRESS", "VOTER", "STATE")
	for _, m := range ms {
		t.row(m.ID, m.HTTPAddr, m.RaftAddr, yesNo(m.Voter), m.State)
	}
	t.flush()
}

func quotasText(q protocol.Quotas) string {
	var parts []string
	add := func(name string, n int64, unit string) {
		if n != 0 {
			parts = append(parts, name+"="+i64toa(n)+unit)
		}
	}
	add("instances", int64(q.Instances), "")
	add("replicas", int64(q.Replicas), "")
	add("cpu", q.CPUMillis, "m")
	add("memory", q.MemoryMB, "MB")
	if len(parts) == 0 {
		return "unlimited"
	}
	return strings.Join(parts, ",")
}

func tenantsTable(w io.Writer, ts []*protocol.Tenant, now time.Time) {
	t := newTable(w, "NAME", "STATE", "LABELS", "QUOTAS", "AGE")
	for _, tn := range ts {
		t.row(tn.Name, tn.State, kvList(tn.Labels), quotasText(tn.Quotas), age(tn.CreatedAt, now))
	}
	t.flush()
}

func tokensTable(w io.Writer, ts []*protocol.Token) {
	t := newTable(w, "ID", "ROLE", "TENANT", "DESCRIPTION", "CREATED", "EXPIRES")
	for _, tk := range ts {
		t.row(tk.ID, tk.Role, tk.Tenant, tk.Description, stamp(tk.CreatedAt), stamp(tk.ExpiresAt))
	}
	t.flush()
}

func auditTable(w io.Writer, recs []*protocol.AuditRecord) {
	t := newTable(w, "TIME", "ACTION", "TARGET", "DETAIL", "RESULT", "ROLE", "TENANT", "TOKEN", "SOURCE", "INDEX")
	for _, r := range recs {
		idx := ""
		if r.Index != 0 {
			idx = utoa(r.Index)
		}
		token := r.TokenID
		if kind, id, ok := strings.Cut(token, "/"); ok { // node/ID: a node's own credential
			token = kind + "/" + shortID(id)
		} else {
			token = shortID(token)
		}
		t.row(stamp(r.Time), r.Action, r.Target, r.Detail, r.Result, r.Role, r.Tenant, token, r.Source, idx)
	}
	t.flush()
}

// isTerminal reports whether w is a terminal, where progress updates in
// place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
