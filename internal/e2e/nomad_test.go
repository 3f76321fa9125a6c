package e2e

// The Nomad API compatibility listener (docs/NOMAD.md), driven by the real
// github.com/hashicorp/nomad/api client against a real server and agent.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
)

// nomadJob is a service job of one raw_exec task running the demo app on
// its dynamic port "http", checked over HTTP.
func nomadJob(id string, count int, greeting string) *nomadapi.Job {
	job := nomadapi.NewServiceJob(id, id, "", 50)
	task := nomadapi.NewTask("app", "raw_exec").
		SetConfig("command", binPath).
		SetConfig("args", []string{"demo-app", "-listen", "127.0.0.1:${NOMAD_PORT_http}"})
	task.Env = map[string]string{"GREETING": greeting}
	task.Require(&nomadapi.Resources{CPU: ptrTo(100), MemoryMB: ptrTo(64)})
	g := nomadapi.NewTaskGroup("app", count).AddTask(task)
	g.Networks = []*nomadapi.NetworkResource{{DynamicPorts: []nomadapi.Port{{Label: "http"}}}}
	g.Services = []*nomadapi.Service{{Name: id, PortLabel: "http", Checks: []nomadapi.ServiceCheck{
		{Type: "http", Path: "/healthz", Interval: 200 * time.Millisecond, Timeout: time.Second}}}}
	g.Update = &nomadapi.UpdateStrategy{MaxParallel: ptrTo(1), MinHealthyTime: ptrTo(200 * time.Millisecond),
		HealthyDeadline: ptrTo(30 * time.Second), AutoRevert: ptrTo(true)}
	job.AddTaskGroup(g)
	return job
}

func ptrTo[T any](v T) *T { return &v }

// nomadClient is a Nomad API client of addr with token.
func nomadClient(t *testing.T, addr, token, namespace string) *nomadapi.Client {
	t.Helper()
	c, err := nomadapi.NewClient(&nomadapi.Config{Address: "http://" + addr, SecretID: token, Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runningAllocs counts a job's allocations the client sees running, and
// describes them.
func runningAllocs(nc *nomadapi.Client, job string) (int, string) {
	allocs, _, err := nc.Jobs().Allocations(job, false, nil)
	if err != nil {
		return 0, err.Error()
	}
	n := 0
	var seen []string
	for _, a := range allocs {
		if a.DesiredStatus == "run" && a.ClientStatus == "running" {
			n++
		}
		seen = append(seen, fmt.Sprintf("%s v%d %s/%s", a.ID, a.JobVersion, a.DesiredStatus, a.ClientStatus))
	}
	return n, strings.Join(seen, ", ")
}

func TestNomadAPI(t *testing.T) {
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	nomadAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	ac := startACLCluster(t, aclOptions{args: []string{"-nomad-addr", nomadAddr}})
	mgmt := ac.client(ac.Server(0), ac.Mgmt)
	for _, tenant := range []string{"default", "team-b"} {
		mgmt.JSON(http.MethodPost, "/v1/tenants", map[string]string{"name": tenant}, nil)
	}
	ac.startAgent(ac.JoinToken)
	nc := nomadClient(t, nomadAddr, ac.Mgmt, "")

	// Register, and see its allocations reach running.
	resp, _, err := nc.Jobs().Register(nomadJob("web", 2, "one"), nil)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if resp.EvalID == "" || resp.JobModifyIndex == 0 {
		t.Fatalf("register answered %+v", resp)
	}
	eventually(t, 60*time.Second, "two allocations of web running", func() (bool, string) {
		n, seen := runningAllocs(nc, "web")
		return n == 2, seen
	})
	eval, _, err := nc.Evaluations().Info(resp.EvalID, nil)
	if err != nil || eval.JobID != "web" || eval.Status != "complete" {
		t.Fatalf("evaluation %s: %+v, %v", resp.EvalID, eval, err)
	}

	// A second job in another namespace, and a list by prefix.
	other := nomadJob("api", 1, "b")
	other.Namespace = ptrTo("team-b")
	if _, _, err := nc.Jobs().Register(other, nil); err != nil {
		t.Fatalf("register in team-b: %v", err)
	}
	list, _, err := nc.Jobs().PrefixList("we")
	if err != nil || len(list) != 1 || list[0].ID != "web" {
		t.Fatalf("jobs with prefix we: %+v, %v", list, err)
	}

	// The job, its summary, evaluations and deployment.
	job, _, err := nc.Jobs().Info("web", nil)
	if err != nil || *job.ID != "web" || *job.TaskGroups[0].Count != 2 || job.TaskGroups[0].Tasks[0].Env["GREETING"] != "one" {
		t.Fatalf("job web: %+v, %v", job, err)
	}
	sum, _, err := nc.Jobs().Summary("web", nil)
	if err != nil || sum.Summary["web"].Running != 2 {
		t.Fatalf("summary of web: %+v, %v", sum, err)
	}
	evals, _, err := nc.Jobs().Evaluations("web", nil)
	if err != nil || len(evals) == 0 {
		t.Fatalf("evaluations of web: %+v, %v", evals, err)
	}

	// A changed job rolls out; its deployment reaches successful.
	if _, _, err := nc.Jobs().Register(nomadJob("web", 2, "two"), nil); err != nil {
		t.Fatalf("re-register: %v", err)
	}
	var deployID string
	eventually(t, 90*time.Second, "the deployment of web's version 2 successful", func() (bool, string) {
		d, _, err := nc.Jobs().LatestDeployment("web", nil)
		if err != nil || d == nil {
			return false, fmt.Sprint(d, err)
		}
		deployID = d.ID
		return d.JobVersion >= 2 && d.Status == "successful", fmt.Sprintf("v%d %s %s", d.JobVersion, d.Status, d.StatusDescription)
	})
	if d, _, err := nc.Deployments().Info(deployID, nil); err != nil || d.JobID != "web" {
		t.Fatalf("deployment %s: %+v, %v", deployID, d, err)
	}
	if allocs, _, err := nc.Deployments().Allocations(deployID, nil); err != nil || len(allocs) < 2 {
		t.Fatalf("allocations of deployment %s: %+v, %v", deployID, allocs, err)
	}

	// Scale through the API.
	if _, _, err := nc.Jobs().Scale("web", "web", ptrTo(3), "more", false, nil, nil); err != nil {
		t.Fatalf("scale: %v", err)
	}
	eventually(t, 60*time.Second, "three allocations of web running", func() (bool, string) {
		n, seen := runningAllocs(nc, "web")
		return n == 3, seen
	})

	// A blocking query on the job list wakes when a job is registered.
	_, meta, err := nc.Jobs().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	woke := make(chan uint64, 1)
	go func() {
		_, m, err := nc.Jobs().List(&nomadapi.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 30 * time.Second})
		if err != nil {
			woke <- 0
			return
		}
		woke <- m.LastIndex
	}()
	time.Sleep(200 * time.Millisecond) // let the query block first; a late one also wakes at once
	if _, _, err := nc.Jobs().Register(nomadJob("worker", 1, "w"), nil); err != nil {
		t.Fatalf("register worker: %v", err)
	}
	select {
	case idx := <-woke:
		if idx <= meta.LastIndex {
			t.Fatalf("blocking query woke with index %d, not after %d", idx, meta.LastIndex)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("blocking query on the job list did not wake on a new job")
	}

	// A tenant token sees only its namespace.
	_, bSecret := ac.token("tenant-viewer", "team-b")
	nb := nomadClient(t, nomadAddr, bSecret, "team-b")
	all, _, err := nb.Jobs().List(&nomadapi.QueryOptions{Namespace: "*"})
	if err != nil || len(all) != 1 || all[0].ID != "api" {
		t.Fatalf("team-b's token lists %+v, %v", all, err)
	}
	if _, _, err := nb.Jobs().Info("web", &nomadapi.QueryOptions{Namespace: "default"}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("team-b's token reading web in default: %v", err)
	}

	// An unsupported feature is a 400 naming it.
	bad := nomadJob("bad", 1, "x")
	bad.TaskGroups[0].Tasks[0].Driver = "docker"
	_, _, err = nc.Jobs().Register(bad, nil)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), `driver "docker"`) {
		t.Fatalf("a docker job answered %v", err)
	}

	// Deregister with purge: the job is gone.
	if _, _, err := nc.Jobs().Deregister("web", true, nil); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	eventually(t, 30*time.Second, "web purged", func() (bool, string) {
		_, _, err := nc.Jobs().Info("web", nil)
		return err != nil && strings.Contains(err.Error(), "404"), fmt.Sprint(err)
	})
}
