package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestCLITenantEnvPlanHistoryRollbackEvents covers the verbs for what only
// the API had: tenant update, environment and plan set, instance history,
// rollback (to version 1 after an update: the instance runs the old spec
// again, as a new version) and events, followed with -f.
func TestCLITenantEnvPlanHistoryRollbackEvents(t *testing.T) {
	c := StartCluster(t, 1)
	s := c.WaitForLeader()
	StartAgent(t, c)

	// tenant update: labels and quotas merge into the tenant's.
	cliOK(t, s, "tenant", "create", "acme", "-label", "trial=yes", "-quota-replicas", "10")
	var tn struct {
		Labels map[string]string `json:"labels"`
		Quotas struct {
			Instances int `json:"instances"`
			Replicas  int `json:"replicas"`
		} `json:"quotas"`
		MaintenanceWindow *struct {
			Days  []string `json:"days"`
			Start string   `json:"start"`
		} `json:"maintenance_window"`
	}
	cliJSON(t, s, &tn, "tenant", "update", "acme", "-label", "tier=gold", "-quota-instances", "5", "-maintenance-window", "tue 01:00 4h")
	if tn.Labels["tier"] != "gold" || tn.Labels["trial"] != "yes" || tn.Quotas.Instances != 5 || tn.Quotas.Replicas != 10 ||
		tn.MaintenanceWindow == nil || tn.MaintenanceWindow.Start != "01:00" {
		t.Fatalf("tenant update -o json = %+v", tn)
	}
	cliOK(t, s, "tenant", "update", "acme", "-remove-label", "trial", "-no-maintenance-window")
	tn.Labels, tn.MaintenanceWindow = nil, nil // decoding merges into a map
	cliJSON(t, s, &tn, "tenant", "show", "acme")
	if _, ok := tn.Labels["trial"]; ok || tn.Labels["tier"] != "gold" || tn.MaintenanceWindow != nil || tn.Quotas.Instances != 5 {
		t.Fatalf("tenant show after removing a label and the window = %+v", tn)
	}
	cliFails(t, s, 2, "nothing to change", "tenant", "update", "acme")
	cliFails(t, s, 1, `tenant "nope" not found`, "tenant", "update", "nope", "-label", "a=b")

	// environment and plan set: what the flags do not name stays.
	cliOK(t, s, "environment", "set", "qa", "-protected", "-constraint", "pool=qa")
	cliOK(t, s, "environment", "set", "qa", "-protected=false")
	var envs []struct {
		Name        string `json:"name"`
		Protected   bool   `json:"protected"`
		Constraints struct {
			Labels map[string]string `json:"labels"`
		} `json:"constraints"`
	}
	cliJSON(t, s, &envs, "environment", "list")
	found := false
	for _, e := range envs {
		if e.Name == "qa" {
			found = !e.Protected && e.Constraints.Labels["pool"] == "qa"
		}
	}
	if !found {
		t.Fatalf("environment list: %+v, want qa unprotected with constraint pool=qa", envs)
	}
	cliOK(t, s, "plan", "set", "small", "-cpu", "200", "-memory", "128", "-max-replicas", "3")
	out := cliOK(t, s, "plan", "set", "small", "-max-replicas", "4")
	if !strings.Contains(out, "Set plan small: cpu 200m, memory 128MB, max replicas 4") {
		t.Fatalf("plan set printed %q", out)
	}
	if out := cliOK(t, s, "plan", "list"); !strings.Contains(out, "small") || !strings.Contains(out, "200m") {
		t.Fatalf("plan list:\n%s", out)
	}

	// An instance at version 1, updated to 2.0.0, then rolled back to 1.
	doc := demoInstance("web", 1)
	specOf(doc)["update"] = map[string]any{"min_healthy_time": "200ms", "healthy_deadline": "1m"}
	createInstance(t, s, "acme", doc)
	waitHealthy(t, c, "acme", "web", 1)
	specOf(doc)["version"] = "2.0.0"
	s.Client().JSON(http.MethodPut, instancePath("acme", "web"), doc, nil)
	// Once version 1's replica is gone, the rollback needs a new one.
	eventually(t, waitTimeout, "acme/web to run one replica, healthy at version 2", func() (bool, string) {
		rs, err := listReplicas(s, "acme", "web")
		if err != nil {
			return false, err.Error()
		}
		live := 0
		for _, r := range rs {
			if r.State != "stopped" && r.State != "failed" && r.State != "lost" {
				live++
			}
		}
		return live == 1 && len(rs) > 0 && rs[len(rs)-1].Version == 2 && rs[len(rs)-1].State == "healthy", describeReplicas(rs)
	})

	out = cliOK(t, s, "instance", "history", "acme/web")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "1.0.0") || !strings.Contains(lines[2], "2.0.0") || !strings.Contains(lines[2], "current") {
		t.Fatalf("instance history:\n%s", out)
	}
	out = cliOK(t, s, "instance", "rollback", "acme/web", "-to", "1", "-wait", "-timeout", "50s")
	if !strings.Contains(out, "Rolling back acme/web: version 3 (1.0.0)") {
		t.Fatalf("instance rollback printed:\n%s", out)
	}
	waitReplicas(t, c, "acme", "web", 1, "healthy at version 3", func(r apiReplica) bool { return r.Version == 3 && r.State == "healthy" })
	var st struct {
		Instance apiInstance `json:"instance"`
	}
	cliJSON(t, s, &st, "instance", "status", "acme/web")
	if st.Instance.Version != 3 || st.Instance.Spec.Version != "1.0.0" {
		t.Fatalf("after the rollback: version %d spec %q, want 3 with version 1's spec 1.0.0", st.Instance.Version, st.Instance.Spec.Version)
	}
	cliFails(t, s, 1, "version 99 of acme/web is not kept", "instance", "rollback", "acme/web", "-to", "99")
	if out := cliOK(t, s, "audit", "list", "-tenant", "acme"); !strings.Contains(out, "instance.rollback") || !strings.Contains(out, "to version 1") {
		t.Fatalf("audit list lacks the rollback:\n%s", out)
	}

	// instance events, and -f: the recent ones, then a scale as it happens.
	if out := cliOK(t, s, "instance", "events", "acme/web"); !strings.Contains(out, "spec changed: version 3") {
		t.Fatalf("instance events:\n%s", out)
	}
	want, _ := followCLI(t, s, "instance", "events", "acme/web", "-f")
	want("acme/web", "spec changed: version 3")
	cliOK(t, s, "instance", "scale", "acme/web", "2")
	want("acme/web", "scaled", "replicas 1 -> 2")
}
