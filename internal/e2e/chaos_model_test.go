package e2e

// The chaos suite's model (RELIABILITY.md): each instance the workload
// uses is a register of (exists, replicas, marker), the marker being the
// env variable CHAOS_MARK that every create and update sets to a value of
// its own. Porcupine checks each instance's history against it.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The kinds of operations of the workload.
const (
	opCreate = "create"
	opUpdate = "update"
	opScale  = "scale"
	opDelete = "delete"
	opRead   = "read"
)

// Outcomes of an operation.
const (
	outcomeOK      = "ok"      // 2xx
	outcomeFailed  = "failed"  // did not happen: 4xx, or 503 before Raft
	outcomeUnknown = "unknown" // may have happened: timeout, connection lost, 503 during commit
)

// instState is what the model keeps of an instance, and what a read sees.
type instState struct {
	Exists   bool   `json:"exists"`
	Replicas int    `json:"replicas,omitempty"`
	Mark     string `json:"mark,omitempty"`
}

func (s instState) String() string {
	if !s.Exists {
		return "absent"
	}
	return fmt.Sprintf("replicas=%d mark=%s", s.Replicas, s.Mark)
}

// chaosOp is one operation of the workload as recorded: what was asked,
// of which server, when (since the workload began) and what came back.
type chaosOp struct {
	Client   int           `json:"client"`
	Key      string        `json:"key"` // the instance's name
	Kind     string        `json:"kind"`
	Replicas int           `json:"replicas,omitempty"` // create, scale
	Mark     string        `json:"mark,omitempty"`     // create, update
	Server   string        `json:"server"`
	Call     time.Duration `json:"call"`
	Return   time.Duration `json:"return"`
	Outcome  string        `json:"outcome"`
	Status   int           `json:"status,omitempty"` // 0: no answer
	Error    string        `json:"error,omitempty"`
	Seen     *instState    `json:"seen,omitempty"` // what a read saw
}

func (o chaosOp) String() string {
	s := fmt.Sprintf("client %d %s %s", o.Client, o.Kind, o.Key)
	switch o.Kind {
	case opCreate:
		s += fmt.Sprintf(" replicas=%d mark=%s", o.Replicas, o.Mark)
	case opUpdate:
		s += " mark=" + o.Mark
	case opScale:
		s += fmt.Sprintf(" replicas=%d", o.Replicas)
	}
	s += fmt.Sprintf(" via %s [%v, %v] -> %s", o.Server, o.Call.Round(time.Millisecond), o.Return.Round(time.Millisecond), o.Outcome)
	if o.Status != 0 {
		s += fmt.Sprintf(" %d", o.Status)
	}
	if o.Seen != nil {
		s += " " + o.Seen.String()
	}
	if o.Error != "" {
		s += " (" + o.Error + ")"
	}
	return s
}

// modelOutput is what the model is told an operation answered.
type modelOutput struct {
	outcome string // outcomeOK, outcomeUnknown, or "not_found", "conflict"
	seen    instState
}

// Outcomes of a 404 and a 409: definite answers that say what the state was.
const (
	answerNotFound = "not_found"
	answerConflict = "conflict"
)

// instanceModel is the register of one instance. An operation of unknown
// outcome is given a return time at the end of history: porcupine may
// place it anywhere after its call, including after everything else,
// which is where one that never happened goes.
var instanceModel = porcupine.Model{
	Init: func() any { return instState{} },
	Step: func(state, input, output any) (bool, any) {
		st, op, out := state.(instState), input.(chaosOp), output.(modelOutput)
		switch out.outcome {
		case answerNotFound:
			return !st.Exists, st
		case answerConflict:
			return op.Kind == opCreate && st.Exists, st
		}
		unknown := out.outcome == outcomeUnknown
		switch op.Kind {
		case opRead:
			return out.seen == st, st
		case opCreate:
			if st.Exists {
				return unknown, st // an unknown create met the instance: 409
			}
			return true, instState{Exists: true, Replicas: op.Replicas, Mark: op.Mark}
		case opDelete:
			return unknown || st.Exists, instState{}
		case opUpdate, opScale:
			if !st.Exists {
				return unknown, st // it answered 404
			}
			if op.Kind == opUpdate {
				st.Mark = op.Mark
			} else {
				st.Replicas = op.Replicas
			}
			return true, st
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		op, out := input.(chaosOp), output.(modelOutput)
		s := op.Kind
		switch op.Kind {
		case opCreate:
			s += fmt.Sprintf("(%d, %s)", op.Replicas, op.Mark)
		case opUpdate:
			s += "(" + op.Mark + ")"
		case opScale:
			s += fmt.Sprintf("(%d)", op.Replicas)
		}
		if op.Kind == opRead && out.outcome == outcomeOK {
			return s + " -> " + out.seen.String()
		}
		return s + " -> " + out.outcome + " via " + op.Server
	},
	DescribeState: func(state any) string { return state.(instState).String() },
}

// porcupineOps turns one instance's recorded operations into porcupine's,
// leaving out those that did not happen and tell nothing (definite
// failures other than 404 and 409, failed reads).
func porcupineOps(ops []chaosOp) []porcupine.Operation {
	var out []porcupine.Operation
	for _, o := range ops {
		p := porcupine.Operation{ClientId: o.Client, Input: o, Call: int64(o.Call), Return: int64(o.Return)}
		switch {
		case o.Outcome == outcomeOK:
			p.Output = modelOutput{outcome: outcomeOK}
			if o.Seen != nil {
				p.Output = modelOutput{outcome: outcomeOK, seen: *o.Seen}
			}
		case o.Outcome == outcomeUnknown && o.Kind != opRead:
			p.Output = modelOutput{outcome: outcomeUnknown}
			p.Return = math.MaxInt64
		case o.Status == 404:
			p.Output = modelOutput{outcome: answerNotFound}
		case o.Status == 409 && o.Kind == opCreate:
			p.Output = modelOutput{outcome: answerConflict}
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}

// linearizability is the verdict on one instance's history.
type linearizability struct {
	Key     string `json:"key"`
	Ops     int    `json:"ops"`
	Result  string `json:"result"` // Ok, Illegal, Unknown (timed out)
	Detail  string `json:"detail,omitempty"`
	Visual  string `json:"visualization,omitempty"` // HTML file of porcupine's
	Elapsed string `json:"elapsed"`
}

// checkLinearizable checks each instance's history; for one that is not
// linearizable it writes porcupine's visualization into dir and describes
// the longest linearizable prefix.
func checkLinearizable(ops []chaosOp, dir string, timeout time.Duration) []linearizability {
	byKey := map[string][]chaosOp{}
	for _, o := range ops {
		byKey[o.Key] = append(byKey[o.Key], o)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []linearizability
	for _, k := range keys {
		hist := porcupineOps(byKey[k])
		start := time.Now()
		res, info := porcupine.CheckOperationsVerbose(instanceModel, hist, timeout)
		v := linearizability{Key: k, Ops: len(hist), Result: string(res), Elapsed: time.Since(start).Round(time.Millisecond).String()}
		if res == porcupine.Illegal {
			v.Detail = describeIllegal(info)
			path := filepath.Join(dir, "linearizability-"+k+".html")
			if err := porcupine.VisualizePath(instanceModel, info, path); err == nil {
				v.Visual = path
			}
		}
		out = append(out, v)
	}
	return out
}

// describeIllegal names the end of the longest linearizable prefix of a
// history that is not linearizable.
func describeIllegal(info porcupine.LinearizationInfo) string {
	var longest []porcupine.Operation
	for _, part := range info.PartialLinearizationsOperations() {
		for _, p := range part {
			if len(p) > len(longest) {
				longest = p
			}
		}
	}
	var steps []string
	for _, op := range longest {
		steps = append(steps, instanceModel.DescribeOperation(op.Input, op.Output))
	}
	if len(steps) > 10 {
		steps = steps[len(steps)-10:]
	}
	return "longest linearizable prefix ends: " + strings.Join(steps, ", ")
}

// lostWrites finds acknowledged writes the final state does not show
// although no other write of their instance could have come after them:
// for each instance, the acknowledged write that returned last, when
// every other write that may have happened (acknowledged or of unknown
// outcome) returned before it was called.
func lostWrites(ops []chaosOp, final map[string]instState) []string {
	byKey := map[string][]chaosOp{}
	for _, o := range ops {
		if o.Kind != opRead && (o.Outcome == outcomeOK || o.Outcome == outcomeUnknown) {
			byKey[o.Key] = append(byKey[o.Key], o)
		}
	}
	var lost []string
	for k, writes := range byKey {
		var last *chaosOp
		for i := range writes {
			if w := &writes[i]; w.Outcome == outcomeOK && (last == nil || w.Return > last.Return) {
				last = w
			}
		}
		if last == nil {
			continue
		}
		alone := true
		for _, w := range writes {
			if w != *last && (w.Outcome == outcomeUnknown || w.Return >= last.Call) {
				alone = false
			}
		}
		if !alone {
			continue
		}
		st := final[k]
		var ok bool
		switch last.Kind {
		case opCreate:
			ok = st == instState{Exists: true, Replicas: last.Replicas, Mark: last.Mark}
		case opUpdate:
			ok = st.Exists && st.Mark == last.Mark
		case opScale:
			ok = st.Exists && st.Replicas == last.Replicas
		case opDelete:
			ok = !st.Exists
		}
		if !ok {
			lost = append(lost, fmt.Sprintf("%s: the last write, %s, acknowledged, is not in the final state (%s)", k, last, st))
		}
	}
	sort.Strings(lost)
	return lost
}

// writeFileAll writes b to path, making its directory.
func writeFileAll(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
