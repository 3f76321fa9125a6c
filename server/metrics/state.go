package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// Series read from the state at each scrape. The per-tenant ones carry
// tenant and environment, never a replica's or a node's id, so that
// restarts and reschedules add no series; each (tenant, environment) that
// has an instance gets every state, zeros included, so that a state's
// series does not come and go with its count.
var (
	instancesDesc = prometheus.NewDesc("drover_instances", "Instances by tenant, environment and state.",
		[]string{"tenant", "environment", "state"}, nil)
	replicasDesc = prometheus.NewDesc("drover_replicas", "Replicas that are wanted or have not ended, by tenant, environment and reported state.",
		[]string{"tenant", "environment", "state"}, nil)
	instanceInfoDesc = prometheus.NewDesc("drover_instance_info", "1 for each instance, with its environment, product and the version it runs.",
		[]string{"tenant", "instance", "environment", "product", "version"}, nil)

	tenantsDesc      = prometheus.NewDesc("drover_tenants", "Tenants in the state.", nil, nil)
	nodesDesc        = prometheus.NewDesc("drover_nodes", "Nodes by status.", []string{"status"}, nil)
	evalsDesc        = prometheus.NewDesc("drover_evaluations_pending", "Evaluations waiting for the scheduler.", nil, nil)
	stateIndexDesc   = prometheus.NewDesc("drover_state_index", "Highest index of the state's tables.", nil, nil)
	rolloutsDesc     = prometheus.NewDesc("drover_rollouts", "Rollouts by state.", []string{"state"}, nil)
	rolloutInstsDesc = prometheus.NewDesc("drover_rollout_instances", "Instances of each rollout that has not ended, by their upgrade state.", []string{"rollout", "product", "state"}, nil)
	instanceStates   = []string{protocol.InstanceRunning, protocol.InstanceDeploying, protocol.InstanceDegraded, protocol.InstanceStopped, protocol.InstanceFailed}
	nodeStatuses     = []string{protocol.NodeReady, protocol.NodeDown, protocol.NodeDraining}
	rolloutStates    = []string{protocol.RolloutScheduled, protocol.RolloutRunning, protocol.RolloutWaiting, protocol.RolloutPaused, protocol.RolloutSucceeded, protocol.RolloutFailed, protocol.RolloutCancelled}
	tenantDescs      = []*prometheus.Desc{instancesDesc, replicasDesc, instanceInfoDesc}
	clusterDescs     = []*prometheus.Desc{tenantsDesc, nodesDesc, evalsDesc, stateIndexDesc, rolloutsDesc, rolloutInstsDesc}
)

// stateCollector reads its series from a snapshot of the state at each
// scrape. With tenant set it gives that tenant's series only.
type stateCollector struct {
	store  *state.Store
	tenant string
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range tenantDescs {
		ch <- d
	}
	if c.tenant == "" {
		for _, d := range clusterDescs {
			ch <- d
		}
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.store.Snapshot()
	collectTenants(ch, snap, c.tenant)
	if c.tenant == "" {
		collectCluster(ch, snap)
	}
}

// envKey is one tenant's environment.
type envKey struct{ tenant, environment string }

// collectTenants sends the per-tenant series: of every tenant, or of
// tenant only.
func collectTenants(ch chan<- prometheus.Metric, snap *state.Snapshot, tenant string) {
	instances := map[envKey]map[string]int{}
	replicas := map[envKey]map[string]int{}
	for _, in := range snap.Instances(state.InstanceFilter{Tenant: tenant}) {
		k := envKey{in.Tenant, in.Environment}
		if instances[k] == nil {
			instances[k] = zeros(instanceStates)
			replicas[k] = zeros(protocol.ReplicaStates)
		}
		instances[k][snap.InstanceStatus(in).State]++
		for _, r := range snap.Replicas(in.ID) {
			if !r.Ended() {
				replicas[k][r.State]++
			}
		}
		version := in.Release
		if version == "" {
			version = in.Spec.Version
		}
		ch <- prometheus.MustNewConstMetric(instanceInfoDesc, prometheus.GaugeValue, 1, in.Tenant, in.Name, in.Environment, in.Product, version)
	}
	send := func(d *prometheus.Desc, counts map[envKey]map[string]int) {
		for k, byState := range counts {
			for st, n := range byState {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), k.tenant, k.environment, st)
			}
		}
	}
	send(instancesDesc, instances)
	send(replicasDesc, replicas)
}

// collectCluster sends the operators' series of the whole state.
func collectCluster(ch chan<- prometheus.Metric, snap *state.Snapshot) {
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	gauge(tenantsDesc, len(snap.Tenants()))
	gauge(evalsDesc, len(snap.Evals()))
	ch <- prometheus.MustNewConstMetric(stateIndexDesc, prometheus.GaugeValue, float64(snap.Index()))
	nodes := zeros(nodeStatuses)
	for _, n := range snap.Nodes() {
		nodes[n.Status]++
	}
	for st, n := range nodes {
		gauge(nodesDesc, n, st)
	}
	rollouts := zeros(rolloutStates)
	for _, r := range snap.Rollouts() {
		rollouts[r.State]++
		if r.Ended() {
			continue
		}
		for st, n := range map[string]int{
			protocol.UpgradePending: r.Counts.Pending, protocol.UpgradeWaiting: r.Counts.Waiting,
			protocol.UpgradeUpgrading: r.Counts.Upgrading, protocol.UpgradeSucceeded: r.Counts.Succeeded,
			protocol.UpgradeFailed: r.Counts.Failed, protocol.UpgradeRolledBack: r.Counts.RolledBack,
			protocol.UpgradeSkipped: r.Counts.Skipped,
		} {
			gauge(rolloutInstsDesc, n, r.ID, r.Product, st)
		}
	}
	for st, n := range rollouts {
		gauge(rolloutsDesc, n, st)
	}
}

// zeros counts nothing yet of each state.
func zeros(states []string) map[string]int {
	m := make(map[string]int, len(states))
	for _, s := range states {
		m[s] = 0
	}
	return m
}
