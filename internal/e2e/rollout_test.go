package e2e

// Scenarios of the issue "phased fleet rollouts": a product's instances of
// several tenants upgraded in waves by the leader's rollout controller,
// run by real agents and real processes.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

type apiRollout struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Message string `json:"message"`
	Counts  struct {
		Total, Pending, Waiting, Upgrading, Succeeded, Failed, Skipped int
		RolledBack                                                     int `json:"rolled_back"`
	} `json:"counts"`
	Instances []struct {
		ID          string    `json:"id"`
		Environment string    `json:"environment"`
		Tenant      string    `json:"tenant"`
		Wave        int       `json:"wave"`
		State       string    `json:"state"`
		Reason      string    `json:"reason"`
		ETA         time.Time `json:"eta"`
	} `json:"instances"`
}

type apiEventT struct {
	Type    string    `json:"type"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// rolloutFleet is a cluster with two agents and the catalogue and
// instances of catalogFleet, made with ACLs off.
func rolloutFleet(t *testing.T, servers int) (*Cluster, *Server, *Client) {
	t.Helper()
	c := StartCluster(t, servers, WithFastRaft())
	s := c.WaitForLeader()
	StartAgent(t, c)
	StartAgent(t, c)
	api := s.Client().WithRetry(retryBudget)
	catalogFleet(t, api, func(string) *Client { return api })
	return c, s, api
}

// rolloutFleetACL is rolloutFleet with ACLs on: the vendor's management
// token defines the catalogue and each tenant's instances are created with
// that tenant's tenant-admin token, as a customer's portal would.
func rolloutFleetACL(t *testing.T) (*Server, *Client) {
	t.Helper()
	ac := startACLCluster(t, aclOptions{})
	s := ac.Server(0)
	for range 2 {
		ac.node(ac.startAgent(ac.JoinToken))
	}
	mgmt := ac.client(s, ac.Mgmt)
	var t1 *Client
	catalogFleet(t, mgmt, func(tenant string) *Client {
		_, admin := ac.token("tenant-admin", tenant)
		c := ac.client(s, admin)
		if t1 == nil {
			t1 = c
		}
		return c
	})
	// What a customer may not do is refused, naming the field, and
	// changes nothing.
	for _, tc := range []struct {
		doc         map[string]any
		status      int
		code, field string
	}{
		{map[string]any{"name": "x", "spec": map[string]any{"command": []string{"/bin/sh"}}}, 403, "permission_denied", "spec"},
		{map[string]any{"name": "x", "product": "hello", "plan": "pro", "parameters": map[string]any{"LICENSE_KEY": "k", "ROOT": "1"}}, 400, "invalid_argument", "parameters.ROOT"},
		{map[string]any{"name": "x", "product": "hello", "plan": "pro", "parameters": map[string]any{"LICENSE_KEY": "k", "SEATS": 99}}, 400, "invalid_argument", "parameters.SEATS"},
		{map[string]any{"name": "x", "product": "hello", "plan": "free", "parameters": map[string]any{"LICENSE_KEY": "k"}}, 400, "invalid_argument", "plan"},
	} {
		r := t1.aclSend(aclEndpoint{"POST", "/v1/tenants/t1/instances", tc.doc})
		var body apiError
		_ = json.Unmarshal(r.Body, &body)
		if r.Status != tc.status || body.Error.Code != tc.code || body.Error.Field != tc.field {
			t.Errorf("t1's admin sending %v: %s, want %d %s naming %s", tc.doc, r, tc.status, tc.code, tc.field)
		}
	}
	var list []apiInstance
	mgmt.JSON(http.MethodGet, "/v1/tenants/t1/instances", nil, &list)
	if len(list) != 2 {
		t.Fatalf("refused requests changed t1's instances: %d", len(list))
	}
	return s, mgmt
}

// catalogFleet defines, with the vendor's client api, plans starter and
// pro and product hello (3 parameters, sold in both plans) with releases
// 0.9.0, 1.0.0, 1.1.0 (upgrades from >=1.0.0) and 1.2.0 (fails its health
// check), channel stable at 1.0.0; then six tenants (t1, t2 in ring early)
// each create, with the client tenantClient gives them, a staging and a
// production instance: t5's production is pinned, t6's runs 0.9.0. It
// returns when all 12 run.
func catalogFleet(t *testing.T, api *Client, tenantClient func(tenant string) *Client) {
	t.Helper()
	api.JSON(http.MethodPut, "/v1/plans/starter", map[string]any{"max_replicas": 1, "resources": map[string]int{"cpu_millis": 100, "memory_mb": 64}}, nil)
	api.JSON(http.MethodPut, "/v1/plans/pro", map[string]any{"max_replicas": 3, "resources": map[string]int{"cpu_millis": 200, "memory_mb": 128}}, nil)
	api.JSON(http.MethodPut, "/v1/products/hello", map[string]any{
		"template": map[string]any{"ports": []string{"http"},
			"health": map[string]any{"type": "http", "port": "http", "path": "/healthz", "interval": "200ms"},
			"update": map[string]any{"min_healthy_time": "300ms", "healthy_deadline": "4s", "auto_rollback": true}},
		"parameters": []map[string]any{
			{"name": "GREETING", "type": "string", "default": "hi", "enum": []string{"hi", "hello"}},
			{"name": "SEATS", "type": "int", "min": 1, "max": 50, "default": 5},
			{"name": "LICENSE_KEY", "type": "string", "secret": true, "required": true},
		},
		"plans": []string{"starter", "pro"}, "default_channel": "stable",
	}, nil)
	for _, v := range []string{"0.9.0", "1.0.0", "1.1.0", "1.2.0"} {
		argv := []string{binPath, "demo-app", "-listen", "127.0.0.1:${PORT}"}
		if v == "1.2.0" {
			argv = append(argv, "-fail-health")
		}
		api.JSON(http.MethodPost, "/v1/products/hello/releases", map[string]any{"version": v, "command": argv,
			"env": map[string]string{"HELLO_VERSION": v}, "upgrade_from": ">=1.0.0"}, nil)
	}
	api.JSON(http.MethodPut, "/v1/products/hello/channels/stable", map[string]string{"release": "1.0.0"}, nil)
	for i := 1; i <= 6; i++ {
		ring := "late"
		if i <= 2 {
			ring = "early"
		}
		tenant := fmt.Sprintf("t%d", i)
		api.JSON(http.MethodPost, "/v1/tenants", map[string]any{"name": tenant, "labels": map[string]string{"ring": ring}}, nil)
		c := tenantClient(tenant)
		for _, env := range []string{"staging", "production"} {
			plan := "starter"
			if env == "production" {
				plan = "pro"
			}
			doc := map[string]any{"name": "hello-" + env, "environment": env, "product": "hello", "plan": plan, "replicas": 1,
				"parameters": map[string]any{"SEATS": i, "LICENSE_KEY": "key-" + tenant}}
			switch {
			case i == 5 && env == "production":
				doc["pinned"] = true
			case i == 6 && env == "production":
				doc["release"] = "0.9.0" // outside 1.1.0's upgrade_from
			}
			c.JSON(http.MethodPost, "/v1/tenants/"+tenant+"/instances", doc, nil)
		}
	}
	eventually(t, waitTimeout, "the 12 instances running", func() (bool, string) {
		var list []apiInstance
		api.JSON(http.MethodGet, "/v1/instances", nil, &list)
		running := 0
		for _, in := range list {
			if in.Status != nil && in.Status.State == "running" {
				running++
			}
		}
		return running == 12, fmt.Sprintf("%d of %d running", running, len(list))
	})
}

func waitRollout(t *testing.T, api *Client, id, what string, done func(apiRollout) bool) apiRollout {
	t.Helper()
	var ro apiRollout
	eventually(t, 2*waitTimeout, what, func() (bool, string) {
		api.JSON(http.MethodGet, "/v1/rollouts/"+id, nil, &ro)
		return done(ro), fmt.Sprintf("%s %s %+v", ro.State, ro.Message, ro.Counts)
	})
	return ro
}

// span is when an instance's upgrade ran, from its rollout events.
type span struct{ start, end time.Time }

func upgradeSpans(t *testing.T, api *Client, ids []string, rolloutID string) map[string]span {
	t.Helper()
	out := map[string]span{}
	for _, id := range ids {
		var evs []apiEventT
		api.JSON(http.MethodGet, "/v1/tenants/"+strings.Replace(id, "/", "/instances/", 1)+"/events", nil, &evs)
		var sp span
		for _, e := range evs {
			if e.Type != "rollout" || !strings.Contains(e.Message, rolloutID) {
				continue
			}
			switch {
			case strings.Contains(e.Message, ": upgrading"):
				sp.start = e.Time
			case strings.Contains(e.Message, ": succeeded"), strings.Contains(e.Message, ": rolled_back"), strings.Contains(e.Message, ": failed"):
				sp.end = e.Time
			}
		}
		if !sp.start.IsZero() {
			out[id] = sp
		}
	}
	return out
}

func TestRolloutWavesConcurrencyStagingFirstAndSkips(t *testing.T) {
	_, api := rolloutFleetACL(t)
	req := map[string]any{
		"product": "hello", "release": "1.1.0",
		"waves": []map[string]any{
			{"name": "staging", "selector": map[string]any{"environments": []string{"staging"}}},
			{"name": "early", "selector": map[string]any{"tenant_labels": map[string]string{"ring": "early"}, "environments": []string{"production"}}},
			{"name": "everyone"},
		},
		"max_concurrent": 2, "staging_first": true,
	}
	// The dry run is the calendar, and creates nothing.
	var dry apiRollout
	api.JSON(http.MethodPost, "/v1/rollouts?dry_run=true", req, &dry)
	if dry.Counts.Total != 12 || dry.Counts.Skipped != 2 {
		t.Fatalf("dry run counts %+v, want 12 with 2 skipped", dry.Counts)
	}
	for _, in := range dry.Instances {
		if in.State != "skipped" && in.ETA.IsZero() {
			t.Errorf("dry run: %s has no ETA", in.ID)
		}
	}
	var none []apiRollout
	api.JSON(http.MethodGet, "/v1/rollouts", nil, &none)
	if len(none) != 0 {
		t.Fatalf("the dry run created a rollout: %+v", none)
	}

	var ro apiRollout
	api.JSON(http.MethodPost, "/v1/rollouts", req, &ro)
	ro = waitRollout(t, api, ro.ID, "the rollout to end", func(r apiRollout) bool { return r.State == "succeeded" || r.State == "failed" || r.State == "paused" })
	if ro.State != "succeeded" || ro.Counts.Succeeded != 10 || ro.Counts.Skipped != 2 {
		t.Fatalf("rollout ended %s (%s) with %+v, want succeeded: 10 upgraded, 2 skipped", ro.State, ro.Message, ro.Counts)
	}
	var ids []string
	for _, in := range ro.Instances {
		switch in.ID {
		case "t5/hello-production":
			if in.State != "skipped" || in.Reason != "pinned" {
				t.Errorf("pinned instance: %s %q", in.State, in.Reason)
			}
		case "t6/hello-production":
			if in.State != "skipped" || !strings.Contains(in.Reason, "upgrade_from >=1.0.0") {
				t.Errorf("instance outside upgrade_from: %s %q", in.State, in.Reason)
			}
		default:
			ids = append(ids, in.ID)
		}
	}
	// Every other instance runs 1.1.0, healthy.
	for _, id := range ids {
		var in apiProductInstance
		api.JSON(http.MethodGet, "/v1/tenants/"+strings.Replace(id, "/", "/instances/", 1), nil, &in)
		if in.Release != "1.1.0" || in.Spec.Env["HELLO_VERSION"] != "1.1.0" || in.Spec.Env["GREETING"] != "hi" ||
			in.Spec.Secrets["LICENSE_KEY"] == "" || in.Status == nil || in.Status.State != "running" {
			t.Errorf("%s after the rollout: release %s env %v status %+v", id, in.Release, in.Spec.Env, in.Status)
		}
	}
	// From the recorded events: never more than 2 upgrading at once, and
	// every production instance starts after its tenant's staging one
	// ended.
	spans := upgradeSpans(t, api, ids, ro.ID)
	if len(spans) != 10 {
		t.Fatalf("upgrade events of %d instances, want 10: %v", len(spans), spans)
	}
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, sp := range spans {
		edges = append(edges, edge{sp.start, 1}, edge{sp.end, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	cur, most := 0, 0
	for _, e := range edges {
		cur += e.delta
		most = max(most, cur)
	}
	if most > 2 {
		t.Errorf("%d instances upgraded at once, over max_concurrent 2", most)
	}
	for i := 1; i <= 4; i++ {
		st, pr := spans[fmt.Sprintf("t%d/hello-staging", i)], spans[fmt.Sprintf("t%d/hello-production", i)]
		if pr.start.Before(st.end) {
			t.Errorf("t%d: production started at %s, before staging ended at %s", i, pr.start, st.end)
		}
	}
	// The wave early (t1, t2's production) ended before everyone's began.
	for _, late := range []string{"t3/hello-production", "t4/hello-production"} {
		for _, early := range []string{"t1/hello-production", "t2/hello-production"} {
			if spans[late].start.Before(spans[early].end) {
				t.Errorf("%s (wave everyone) started before %s (wave early) ended", late, early)
			}
		}
	}
}

// Through the CLI: a release whose health check fails rolls the first
// instance back, pauses the rollout at max_failures, and cancel leaves the
// finished instances as they are.
func TestRolloutOfAFailingReleasePausesAndCancels(t *testing.T) {
	_, s, api := rolloutFleet(t, 1)
	file := writeFile(t, "rollout.yaml", `product: hello
release: 1.2.0
selector: {environments: [staging]}
max_failures: 1
`)
	var ro apiRollout
	cliJSON(t, s, &ro, "rollout", "create", "-f", file)
	// status -w follows the rollout until it pauses.
	cliJSON(t, s, &ro, "rollout", "status", ro.ID, "-w")
	if ro.State != "paused" {
		t.Fatalf("rollout status -w ended with %s %s", ro.State, ro.Message)
	}
	if ro.Counts.RolledBack != 1 || !strings.Contains(ro.Message, "max_failures 1") {
		t.Fatalf("paused rollout: %s %+v", ro.Message, ro.Counts)
	}
	var first string
	for _, in := range ro.Instances {
		if in.State == "rolled_back" {
			first = in.ID
			if !strings.Contains(in.Reason, "rolled back") {
				t.Errorf("%s rolled back with reason %q", in.ID, in.Reason)
			}
		}
	}
	var in apiProductInstance
	eventually(t, waitTimeout, first+" back on 1.0.0 and running", func() (bool, string) {
		api.JSON(http.MethodGet, "/v1/tenants/"+strings.Replace(first, "/", "/instances/", 1), nil, &in)
		return in.Status != nil && in.Status.State == "running", fmt.Sprintf("%+v", in.Status)
	})
	// Paused: nothing else starts, over two of the controller's ticks.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		api.JSON(http.MethodGet, "/v1/rollouts/"+ro.ID, nil, &ro)
		if ro.Counts.Upgrading != 0 || ro.Counts.Pending+ro.Counts.Waiting != 5 {
			t.Fatalf("a paused rollout moved on: %+v", ro.Counts)
		}
	}
	cliJSON(t, s, &ro, "rollout", "cancel", ro.ID)
	if ro.State != "cancelled" || ro.Counts.Skipped != 5 || ro.Counts.RolledBack != 1 {
		t.Fatalf("cancelled rollout: %s %+v", ro.State, ro.Counts)
	}
	if out := cliOK(t, s, "rollout", "status", ro.ID); !strings.Contains(out, "rollout cancelled") || !strings.Contains(out, "rolled back") {
		t.Errorf("rollout status after cancel:\n%s", out)
	}
	if out := cliOK(t, s, "rollout", "list", "-product", "hello"); !strings.Contains(out, ro.ID) || !strings.Contains(out, "cancelled") {
		t.Errorf("rollout list:\n%s", out)
	}
	if code, _, _ := api.Do(http.MethodPost, "/v1/rollouts/"+ro.ID+"/resume", nil); code != http.StatusConflict {
		t.Errorf("resume of a cancelled rollout: %d, want 409", code)
	}
}

// kill -9 of the leader in the middle of a rollout: the new leader's
// controller carries on from the state; no instance is upgraded twice and
// none is skipped by mistake.
func TestRolloutSurvivesLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("a leader kill in the middle of a rollout")
	}
	c, leader, api := rolloutFleet(t, 3)
	var ro apiRollout
	api.JSON(http.MethodPost, "/v1/rollouts", map[string]any{"product": "hello", "release": "1.1.0", "max_concurrent": 1,
		"selector": map[string]any{"channel": "stable"}}, &ro)
	ro = waitRollout(t, api, ro.ID, "two instances upgraded", func(r apiRollout) bool { return r.Counts.Succeeded >= 2 || r.State != "running" })
	leader.Kill()
	next := c.WaitForNewLeader(leader)
	api = next.Client().WithRetry(retryBudget)
	ro = waitRollout(t, api, ro.ID, "the rollout to end under the new leader", func(r apiRollout) bool {
		return r.State == "succeeded" || r.State == "failed" || r.State == "paused"
	})
	// t6's production instance names its release: it follows no channel.
	if ro.State != "succeeded" || ro.Counts.Total != 11 || ro.Counts.Succeeded != 10 || ro.Counts.Skipped != 1 {
		t.Fatalf("rollout after the leader kill: %s (%s) %+v, want succeeded, 10 upgraded, 1 skipped", ro.State, ro.Message, ro.Counts)
	}
	// A rollout of a channel's instances promotes the channel.
	var chans []struct{ Name, Release string }
	api.JSON(http.MethodGet, "/v1/products/hello/channels", nil, &chans)
	if len(chans) != 1 || chans[0].Release != "1.1.0" {
		t.Errorf("channels after the rollout: %+v, want stable at 1.1.0", chans)
	}
	for _, in := range ro.Instances {
		if in.State == "skipped" {
			continue
		}
		var evs []apiEventT
		path := "/v1/tenants/" + strings.Replace(in.ID, "/", "/instances/", 1)
		api.JSON(http.MethodGet, path+"/events", nil, &evs)
		starts := 0
		for _, e := range evs {
			if e.Type == "rollout" && strings.Contains(e.Message, ro.ID) && strings.Contains(e.Message, ": upgrading") {
				starts++
			}
		}
		var inst apiProductInstance
		api.JSON(http.MethodGet, path, nil, &inst)
		if starts != 1 || inst.Version != 2 || inst.Release != "1.1.0" {
			t.Errorf("%s: %d upgrade starts, version %d, release %s; want one upgrade to version 2 on 1.1.0", in.ID, starts, inst.Version, inst.Release)
		}
	}
}
