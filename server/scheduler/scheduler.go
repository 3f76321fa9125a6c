// Package scheduler turns the desired state of instances into replicas on
// nodes and keeps it true: placement (feasibility, then ranking), the
// replacement of lost and failed replicas, scaling, deployments with
// canaries and rollback, rolling restarts and node drains.
//
// Schedule is a function of a state snapshot and an evaluation (in a
// fleet of more than 256 nodes, of a shuffled order of the nodes too: see
// pickFrom): it returns the plan that moves one instance one step closer
// to what is wanted. Worker runs it on the leader and commits each plan
// through Raft, one at a time, so that plans never race. Steps that wait
// for time to pass (a minimum healthy time, a healthy deadline, a
// reschedule backoff, a drain deadline) end with a plan that asks to be
// evaluated again at a given time; steps that wait for the state to
// change (a replica becoming healthy, a node joining, a promotion) need
// nothing: the FSM creates an evaluation when it changes. Since log
// version 4 a replica that starts or turns healthy makes one only while
// such a step waits for it (state's writer.awaited): a new reason to wait
// for a replica's health must be taught to it.
package scheduler

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// Rescheduling after failures. A replica whose restart policy is used up
// on its node (state failed) is replaced on another node where one fits,
// after a delay of RescheduleDelay, doubled for each other replica of the
// same version that failed within FailureWindow before it, up to
// MaxRescheduleDelay. The failures are counted from the replicas the state
// keeps (state.MaxTerminalPerInstance), so in practice the delay stays
// below two minutes; a version that keeps failing is a deployment problem,
// which deployments catch.
const (
	RescheduleDelay    = 5 * time.Second
	MaxRescheduleDelay = 5 * time.Minute
	FailureWindow      = time.Hour
)

// Event types the scheduler records for an instance.
const (
	EventPlaced     = "replica-placed"
	EventPending    = "replica-pending"
	EventStopping   = "replica-stopping"
	EventDeployment = "deployment"
)

// Schedule returns the plan for one evaluation. The plan always names the
// evaluation, so that applying it, even empty, marks the work done; it asks
// for a retry (Retry and RetryAt) when a later step waits for time to pass.
// ids makes the ids of new replicas and deployments.
func Schedule(snap *state.Snapshot, eval *state.Eval, now time.Time, ids func() string) *state.Plan {
	return schedule(snap, eval, now, ids, nil)
}

// schedule is Schedule with the nodes of the snapshot and what they hold
// already read (the worker keeps them over a batch), or nil.
func schedule(snap *state.Snapshot, eval *state.Eval, now time.Time, ids func() string, nodes *nodeTable) *state.Plan {
	s := &sched{
		table:    nodes,
		snap:     snap,
		now:      now,
		ids:      ids,
		plan:     &state.Plan{Instance: eval.Instance, EvalIndex: eval.Index},
		in:       snap.Instance(eval.Instance),
		replicas: snap.Replicas(eval.Instance),
		stopped:  map[string]bool{},
		why:      map[string]string{},
		specs:    map[string]*protocol.Spec{},
		same:     map[uint64]bool{},
	}
	if s.in == nil {
		// Deleted: the FSM stopped its replicas already; make sure of it,
		// without events, which would outlive the instance.
		for _, r := range s.replicas {
			if r.Desired == protocol.DesiredRun {
				s.plan.Stop = append(s.plan.Stop, state.ReplicaStop{ID: r.ID, Message: "instance deleted"})
			}
		}
		return s.plan
	}
	s.plan.Version = s.in.Version
	s.env = snap.Environment(s.in.Environment)
	s.tenant = snap.Tenant(s.in.Tenant)
	if d := s.in.Deployment; d != nil {
		c := *d
		s.dep = &c
	}
	defer s.restore()
	s.reconcile()
	s.finish()
	return s.plan
}

// mode says what happens to the replicas of versions other than the
// instance's current one.
type mode int

const (
	// modeRolling replaces them, create before destroy, max_parallel at a time.
	modeRolling mode = iota
	// modeCanary keeps them and places the deployment's canaries beside them.
	modeCanary
	// modeHolding keeps them: the deployment failed and nothing rolls back.
	modeHolding
)

// sched is one evaluation in progress: the plan under construction and
// what it needs to know of the state.
type sched struct {
	snap     *state.Snapshot
	now      time.Time
	ids      func() string
	plan     *state.Plan
	in       *protocol.Instance
	env      *protocol.Environment
	tenant   *protocol.Tenant
	replicas []*protocol.Replica // the instance's, oldest first

	stopped map[string]bool   // replicas this plan stops
	why     map[string]string // why an outdated replica is replaced
	failed  []*protocol.Replica

	dep      *protocol.Deployment // the deployment as this plan leaves it
	depDirty bool

	table *nodeTable   // the nodes as the snapshot has them, when given
	nodes []*nodeState // every node, read on the first placement
	// stopping are the replicas this plan stops, in order.
	stopping []*protocol.Replica
	byID     map[string]*nodeState
	// changed is what this evaluation did to the table's nodes, which
	// restore undoes: reservations, and the nodes whose mine or failed it
	// set.
	changed []reservation
	marked  []*nodeState

	specs map[string]*protocol.Spec // by instance id and version
	same  map[uint64]bool           // versions of this instance with the current spec

	pending []pendingNote
	retry   time.Time
}

type pendingNote struct {
	msg string
	ids []string
}

func (s *sched) reconcile() {
	want, why := s.wanted()
	alive := s.reap()
	if want == 0 {
		for _, r := range alive {
			s.stop(r, why)
		}
		if s.running() {
			s.setDeployment(protocol.DeploymentCancelled, why)
		}
		return
	}
	m := s.deployment(alive, want)
	if s.plan.Rollback != 0 {
		return // the FSM makes a new version; the next evaluation rolls to it
	}
	if m == modeCanary && s.promote(alive) {
		m = modeRolling
	}
	good, old, canaries := s.classify(alive, m)
	// Every stop comes before any placement, so that placements see the
	// capacity and the spread the plan leaves.
	version, newCanaries := s.in.Version, 0
	if m == modeCanary {
		canaries, _, newCanaries = s.converge(s.dep.Canaries, canaries, nil, "more canaries than the deployment asks for")
		version = s.fromVersion()
	}
	good, old, n := s.converge(want, good, old, why)
	s.placeWaiting(canaries)
	s.place(newCanaries, s.in.Version, true)
	s.placeWaiting(good)
	s.place(n, version, false)
	s.progress(m, want, good, old)
}

// wanted returns how many replicas should run, and why the others stop.
func (s *sched) wanted() (int, string) {
	if t := s.snap.Tenant(s.in.Tenant); t != nil && t.State == protocol.TenantSuspended {
		return 0, "tenant suspended"
	}
	if s.in.Stopped {
		return 0, "instance stopped"
	}
	return s.in.Replicas, fmt.Sprintf("scaled down to %d", s.in.Replicas)
}

// reap stops the replicas the scheduler wants running but that are gone:
// lost with their node, or ended on it. It returns the others.
func (s *sched) reap() (alive []*protocol.Replica) {
	for _, r := range s.replicas {
		if r.Desired != protocol.DesiredRun {
			continue
		}
		var node *protocol.Node
		if r.Node != "" {
			node = s.snap.Node(r.Node)
		}
		name := nodeName(node, r.Node)
		switch {
		case r.State == protocol.ReplicaLost || r.Node != "" && (node == nil || node.Status == protocol.NodeDown):
			// Stopped, so that the node stops it if it comes back: it
			// is replaced now and must never run twice.
			s.stop(r, fmt.Sprintf("lost with node %s; replaced", name))
		case r.State == protocol.ReplicaStopped && s.in.Spec.Restart.Policy != protocol.RestartAlways:
			// It ended cleanly and its restart policy says not to run it
			// again: it is finished, not replaced (else a command that
			// exits 0 would be started over and over).
			alive = append(alive, r)
		case r.Terminal():
			msg := fmt.Sprintf("%s on node %s", r.State, name)
			if r.Message != "" {
				msg += " (" + r.Message + ")"
			}
			s.stop(r, msg+"; replaced")
			if r.State == protocol.ReplicaFailed {
				s.failed = append(s.failed, r)
			}
		default:
			alive = append(alive, r)
		}
	}
	return alive
}

// classify sorts the live replicas: good ones count towards the wanted
// number; old ones are replaced, create before destroy; canaries are the
// deployment's, in its canary phase. Replicas that need replacing but hold
// nothing worth keeping (not placed, or past a drain's deadline) are
// stopped at once.
func (s *sched) classify(alive []*protocol.Replica, m mode) (good, old, canaries []*protocol.Replica) {
	for _, r := range alive {
		cur := s.current(r)
		if why, now := s.migration(r); why != "" {
			if r.Node == "" || now || m == modeCanary && cur {
				s.stop(r, why)
			} else {
				s.why[r.ID] = why
				old = append(old, r)
			}
			continue
		}
		switch {
		case m == modeCanary && cur:
			canaries = append(canaries, r)
		case cur || m != modeRolling:
			good = append(good, r)
		case r.Node == "":
			s.stop(r, fmt.Sprintf("replaced by version %d before it was placed", s.in.Version))
		default:
			s.why[r.ID] = fmt.Sprintf("replaced by version %d", s.in.Version)
			old = append(old, r)
		}
	}
	return good, old, canaries
}

// migration says why a replica of the right version must still move: its
// node is draining or outside its tenant's region, or a restart asked for
// new processes. The FSM's state.replaced knows the same reasons, to
// evaluate when a replacement turns healthy: a reason added here must be
// added there. now is set when it must stop at once: the drain's
// deadline has passed.
func (s *sched) migration(r *protocol.Replica) (why string, now bool) {
	if r.Node != "" {
		n := s.snap.Node(r.Node)
		if n != nil && s.tenant != nil && s.tenant.Region != "" && n.Region != s.tenant.Region {
			return fmt.Sprintf("node %s is outside tenant %s's region %s", nodeName(n, n.ID), s.tenant.Name, s.tenant.Region), false
		}
		if n != nil && (n.Drain != nil || n.Status == protocol.NodeDraining) {
			if n.Drain != nil && !n.Drain.Deadline.IsZero() {
				if !s.now.Before(n.Drain.Deadline) {
					return fmt.Sprintf("node %s drained: deadline reached", nodeName(n, n.ID)), true
				}
				s.retryAt(n.Drain.Deadline)
			}
			return fmt.Sprintf("node %s is draining", nodeName(n, n.ID)), false
		}
	}
	if r.Epoch != s.in.RestartEpoch {
		return "restarted", false
	}
	return "", false
}

// converge works out how want good replicas come to run: it stops the
// excess, newest first; stops old replicas once new ones have been healthy
// for min_healthy_time, so that the number of healthy replicas never drops
// below want; and says how many to place: at once where nothing runs in
// their stead, max_parallel at a time where an old replica still serves.
// It returns the good and old replicas that remain, and the number to place.
func (s *sched) converge(want int, good, old []*protocol.Replica, why string) (_, _ []*protocol.Replica, place int) {
	if len(good) > want {
		victims := slices.Clone(good)
		slices.SortStableFunc(victims, func(a, b *protocol.Replica) int {
			if (a.Node == "") != (b.Node == "") {
				if a.Node == "" {
					return -1
				}
				return 1
			}
			return newestFirst(a, b)
		})
		for _, r := range victims[:len(good)-want] {
			s.stop(r, why)
		}
		good = slices.DeleteFunc(good, func(r *protocol.Replica) bool { return s.stopped[r.ID] })
	}
	settled := 0
	for _, r := range good {
		if s.settled(r) {
			settled++
		}
	}
	// How many old replicas may stop depends only on the good ones that
	// have settled, never on what this plan places.
	stop := min(len(old), max(0, settled+len(old)-want))
	slices.SortStableFunc(old, func(a, b *protocol.Replica) int {
		ah, bh := a.State == protocol.ReplicaHealthy, b.State == protocol.ReplicaHealthy
		if ah != bh {
			if bh {
				return -1
			}
			return 1
		}
		return newestFirst(a, b)
	})
	for _, r := range old[:stop] {
		s.stop(r, s.why[r.ID])
	}
	old = old[stop:]
	if len(old) > 0 {
		s.retrySettling(good)
	}

	missing := want - len(good)
	free := max(0, missing-len(old))
	roll := missing - free
	if roll > 0 {
		roll = min(roll, max(0, s.maxParallel()-(len(good)-settled)))
	}
	return good, old, free + roll
}

// placeWaiting tries again to place the replicas among rs that wait for a node.
func (s *sched) placeWaiting(rs []*protocol.Replica) {
	for _, r := range rs {
		if r.Node == "" {
			c := *r
			s.assign(&c, true)
		}
	}
}

// newestFirst orders replicas newest first: by creation, then by id.
func newestFirst(a, b *protocol.Replica) int {
	if c := cmp.Compare(b.CreateIndex, a.CreateIndex); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

// place adds n new replicas of version.
func (s *sched) place(n int, version uint64, canary bool) {
	for range n {
		s.assign(&protocol.Replica{
			ID: s.ids(), Tenant: s.in.Tenant, Instance: s.in.Name,
			Desired: protocol.DesiredRun, State: protocol.ReplicaPending,
			Version: version, Epoch: s.in.RestartEpoch, Canary: canary, CreatedAt: s.now,
		}, false)
	}
	if n > 0 && s.running() && version == s.dep.ToVersion {
		hd := s.healthyDeadline()
		s.dep.Deadline = s.now.Add(hd)
		s.depDirty = true
		s.retryAt(s.now.Add(hd))
	}
}

// assign finds a node for r, a new replica or one that waits unplaced
// (existing), and adds it to the plan. A replica no node can take stays
// pending with the reason; an existing one whose reason did not change is
// left alone, so that retries write nothing.
func (s *sched) assign(r *protocol.Replica, existing bool) {
	prev := r.Message
	spec := s.spec(s.in.ID, r.Version)
	if spec == nil {
		spec = &s.in.Spec
	}
	d := newDemand(spec, s.env, s.tenant)
	var msg string
	if until, failures := s.backoff(r); s.now.Before(until) {
		s.retryAt(until)
		msg = fmt.Sprintf("rescheduling after a backoff of %s: %d %s of version %d failed in the last %s",
			until.Sub(r.CreatedAt), failures, plural(failures, "replica", "replicas"), r.Version, FailureWindow)
	} else if n, why, ok := s.pick(d); ok {
		r.Node, r.Message = n.node.ID, ""
		s.reserve(n, d, 1)
		s.mark(n).mine++
		s.plan.Place = append(s.plan.Place, r)
		s.event(EventPlaced, r.ID, n.node.ID, fmt.Sprintf("replica %s %s", r.ID, why))
		return
	} else {
		msg = why
	}
	if existing && prev == msg {
		return
	}
	r.Node, r.Message = "", msg
	s.plan.Place = append(s.plan.Place, r)
	for i := range s.pending {
		if s.pending[i].msg == msg {
			s.pending[i].ids = append(s.pending[i].ids, r.ID)
			return
		}
	}
	s.pending = append(s.pending, pendingNote{msg: msg, ids: []string{r.ID}})
}

// pick chooses the node for a replica of demand d, looking at the nodes
// from where the table's last look ended (pickFrom).
func (s *sched) pick(d *demand) (*nodeState, string, bool) {
	nodes := s.nodeList()
	var zones []int
	seen := make(map[*nodeState]bool, len(s.marked))
	for _, n := range s.marked { // every node whose mine is not 0
		if !seen[n] {
			seen[n] = true
			zones = addZone(zones, n)
		}
	}
	n, why, ok, looked := pickFrom(nodes, s.table.order, zones, s.table.next, d)
	if len(nodes) > 0 {
		s.table.next = (s.table.next + looked) % len(nodes)
	}
	return n, why, ok
}

// backoff returns when r may be placed after recent failures of its
// version, and how many there were.
func (s *sched) backoff(r *protocol.Replica) (time.Time, int) {
	n := 0
	for _, f := range s.replicas {
		if f.ID != r.ID && f.State == protocol.ReplicaFailed && f.Version == r.Version &&
			!f.CreatedAt.After(r.CreatedAt) && r.CreatedAt.Sub(f.CreatedAt) < FailureWindow {
			n++
		}
	}
	if n == 0 {
		return time.Time{}, 0
	}
	return r.CreatedAt.Add(rescheduleDelay(n)), n
}

// rescheduleDelay is the wait before replacing a replica after n recent
// failures of its version.
func rescheduleDelay(n int) time.Duration {
	d := RescheduleDelay
	for i := 1; i < n && d < MaxRescheduleDelay; i++ {
		d *= 2
	}
	return min(d, MaxRescheduleDelay)
}

// stop adds a replica to the plan's stops. Its resources are free for
// the placements of the same plan.
func (s *sched) stop(r *protocol.Replica, why string) {
	if s.stopped[r.ID] {
		return
	}
	s.stopped[r.ID] = true
	s.stopping = append(s.stopping, r)
	s.plan.Stop = append(s.plan.Stop, state.ReplicaStop{ID: r.ID, Message: why})
	if n := s.byID[r.Node]; n != nil && r.Holds() {
		s.reserve(n, demandOf(r), -1)
		if r.Tenant == s.in.Tenant && r.Instance == s.in.Name {
			s.mark(n).mine--
		}
	}
	msg := fmt.Sprintf("stopping replica %s: %s", r.ID, why)
	if r.Node != "" {
		msg = fmt.Sprintf("stopping replica %s on node %s: %s", r.ID, nodeName(s.snap.Node(r.Node), r.Node), why)
	}
	s.event(EventStopping, r.ID, r.Node, msg)
}

// nodeList returns every node with what is reserved on it, read once: one
// usage row per node, kept by the FSM, less what this plan stops. The
// nodes are the worker's table's (else a table of the snapshot's own),
// changed in place for this evaluation and put back by restore: at 10,000
// nodes, copying them for each evaluation cost more than scheduling it.
func (s *sched) nodeList() []*nodeState {
	if s.byID != nil {
		return s.nodes
	}
	if s.table == nil {
		s.table = newNodeTable(s.snap)
	}
	s.nodes, s.byID = s.table.nodes, s.table.byID
	for _, r := range s.stopping {
		if ns := s.byID[r.Node]; ns != nil && r.Holds() {
			s.reserve(ns, demandOf(r), -1)
		}
	}
	for _, r := range s.replicas {
		ns := s.byID[r.Node]
		if ns == nil {
			continue
		}
		if r.Holds() && !s.stopped[r.ID] {
			s.mark(ns).mine++
		}
		if r.State == protocol.ReplicaFailed {
			s.mark(ns).failed = true
		}
	}
	return s.nodes
}

// reservation is one change of what a node holds: sign 1 reserves d on
// n, -1 frees it.
type reservation struct {
	n    *nodeState
	d    *demand
	sign int
}

func (s *sched) reserve(n *nodeState, d *demand, sign int) {
	n.reserve(d, sign)
	s.changed = append(s.changed, reservation{n, d, sign})
}

// mark returns n, remembered as one whose mine or failed this evaluation
// sets (they are the instance's, zero in the table).
func (s *sched) mark(n *nodeState) *nodeState {
	s.marked = append(s.marked, n)
	return n
}

// restore undoes what the evaluation did to the table's nodes, so that
// the next evaluation of the batch starts from the table again (which the
// worker then refreshes with the plan, if it is played).
func (s *sched) restore() {
	for _, c := range slices.Backward(s.changed) {
		c.n.reserve(c.d, -c.sign)
	}
	for _, n := range s.marked {
		n.mine, n.failed = 0, false
	}
	s.changed, s.marked = nil, nil
}

// nodeTable is every node of a snapshot with what it holds: the usage
// rows the FSM keeps. The worker builds one per batch and refreshes the
// nodes each plan changes, instead of reading every node per evaluation.
type nodeTable struct {
	nodes []*nodeState
	byID  map[string]*nodeState
	// order is a shuffled order of the nodes, and next where in it the
	// next placement starts to look, in a fleet too large to rank whole
	// (pickFrom): where the last look ended.
	order []int
	next  int
}

func newNodeTable(snap *state.Snapshot) *nodeTable {
	nodes := snap.Nodes()
	t := &nodeTable{nodes: make([]*nodeState, 0, len(nodes)), byID: make(map[string]*nodeState, len(nodes))}
	states := make([]nodeState, len(nodes))
	// Nodes and their usage rows both come in id order: one pass over
	// each rather than a lookup per node. A node without a row holds
	// nothing; a row without a node is a removed node's.
	usage := snap.NodeUsages()
	for i, n := range nodes {
		for len(usage) > 0 && usage[0].Node < n.ID {
			usage = usage[1:]
		}
		u := state.NodeUsage{}
		if len(usage) > 0 && usage[0].Node == n.ID {
			u = *usage[0]
		}
		states[i] = nodeState{node: n, cpu: u.CPUMillis, mem: u.MemoryMB, ports: u.Ports, count: u.Replicas, rank: i + 1}
		t.nodes = append(t.nodes, &states[i])
		t.byID[n.ID] = &states[i]
	}
	numberZones(t.nodes)
	if len(nodes) > fullScan {
		// Each batch looks at a large fleet in an order of its own; a
		// fleet ranked whole is looked at in id order (the choice does
		// not depend on it).
		t.order = rand.Perm(len(nodes))
	}
	return t
}

// refresh reads again what the nodes a plan changed hold.
func (t *nodeTable) refresh(snap *state.Snapshot, p *state.Plan) {
	touched := map[string]bool{}
	for _, r := range p.Place {
		touched[r.Node] = true
	}
	for _, st := range p.Stop {
		if r := snap.Replica(st.ID); r != nil {
			touched[r.Node] = true
		}
	}
	for id := range touched {
		if ns := t.byID[id]; ns != nil {
			u := snap.NodeUsageRow(id)
			ns.cpu, ns.mem, ns.ports, ns.count = u.CPUMillis, u.MemoryMB, u.Ports, u.Replicas
		}
	}
}

// demandOf returns what a placed replica, of any instance, reserves.
func demandOf(r *protocol.Replica) *demand {
	return &demand{res: protocol.Resources{CPUMillis: r.Reserved.CPUMillis, MemoryMB: r.Reserved.MemoryMB}, ports: r.Reserved.Ports}
}

// spec returns an instance's spec at a version: the stored version, else
// the instance's own spec at its current version; nil when neither exists.
func (s *sched) spec(instanceID string, version uint64) *protocol.Spec {
	key := fmt.Sprintf("%s@%d", instanceID, version)
	if sp, ok := s.specs[key]; ok {
		return sp
	}
	var sp *protocol.Spec
	if v := s.snap.Version(instanceID, version); v != nil {
		sp = &v.Spec
	} else if in := s.snap.Instance(instanceID); in != nil && in.Version == version {
		sp = &in.Spec
	}
	s.specs[key] = sp
	return sp
}

// current reports whether r runs the instance's current spec: its version,
// or an older one with the same spec but for the update strategy (as after
// a rollback), which needs no new process.
func (s *sched) current(r *protocol.Replica) bool {
	if r.Version == s.in.Version {
		return true
	}
	same, ok := s.same[r.Version]
	if !ok {
		if sp := s.spec(s.in.ID, r.Version); sp != nil {
			a, b := *sp, s.in.Spec
			a.Update, b.Update = protocol.UpdateStrategy{}, protocol.UpdateStrategy{}
			same = reflect.DeepEqual(a, b)
		}
		s.same[r.Version] = same
	}
	return same
}

func (s *sched) minHealthyTime() time.Duration { return max(0, s.in.Spec.Update.MinHealthyTime.D()) }

func (s *sched) healthyDeadline() time.Duration {
	if d := s.in.Spec.Update.HealthyDeadline.D(); d > 0 {
		return d
	}
	return protocol.DefaultHealthyDeadline
}

func (s *sched) maxParallel() int { return max(1, s.in.Spec.Update.MaxParallel) }

// settled reports whether r has been healthy for the minimum healthy time.
func (s *sched) settled(r *protocol.Replica) bool {
	return r.State == protocol.ReplicaHealthy && !r.HealthySince.IsZero() &&
		!s.now.Before(r.HealthySince.Add(s.minHealthyTime()))
}

// retrySettling asks to be evaluated again when the healthy replicas of
// rs have been healthy long enough to count.
func (s *sched) retrySettling(rs []*protocol.Replica) {
	for _, r := range rs {
		if r.State == protocol.ReplicaHealthy && !r.HealthySince.IsZero() && !s.settled(r) {
			s.retryAt(r.HealthySince.Add(s.minHealthyTime()))
		}
	}
}

func (s *sched) retryAt(t time.Time) {
	if t.After(s.now) && (s.retry.IsZero() || t.Before(s.retry)) {
		s.retry = t
	}
}

func (s *sched) event(typ, replica, node, msg string) {
	s.plan.Events = append(s.plan.Events, protocol.Event{
		Tenant: s.in.Tenant, Instance: s.in.Name, Time: s.now, Type: typ, Replica: replica, Node: node, Message: msg,
	})
}

// finish completes the plan: the deployment if it changed, one event per
// reason replicas stay pending, and the retry.
func (s *sched) finish() {
	if s.depDirty {
		d := *s.dep
		s.plan.Deployment = &d
	}
	for _, p := range s.pending {
		msg := fmt.Sprintf("replica %s pending: %s", p.ids[0], p.msg)
		replica := p.ids[0]
		if len(p.ids) > 1 {
			msg, replica = fmt.Sprintf("%d replicas pending: %s", len(p.ids), p.msg), ""
		}
		s.event(EventPending, replica, "", msg)
	}
	if !s.retry.IsZero() && s.plan.Rollback == 0 {
		s.plan.Retry, s.plan.RetryAt = true, s.retry
	}
}
