package api_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/cluster"
	"github.com/drover-dev/drover/server/clustertest"
)

// Any server accepts any request: followers forward writes and
// linearizable reads to the leader and answer stale reads themselves.
func TestFollowersForward(t *testing.T) {
	e := newEnv(t, envConfig{Servers: 3})
	leader := e.c.Leader()
	for i, f := range e.c.Followers() {
		u := f.URL
		name := fmt.Sprintf("t%d", i)
		r := must(t, 201, "POST", u+"/v1/tenants", `{"name":"`+name+`"}`, nil)
		if r.index() == 0 {
			t.Fatalf("forwarded write answers no index: %v", r.header)
		}
		if leader.Store.Snapshot().Tenant(name) == nil {
			t.Fatal("the forwarded write is not on the leader")
		}
		// A linearizable read through the follower sees it at once.
		var tn protocol.Tenant
		must(t, 200, "GET", u+"/v1/tenants/"+name, nil, &tn)
		if tn.Name != name {
			t.Fatalf("read through %s: %+v", f.ID, tn)
		}
		// Errors come back through the forwarding unchanged.
		checkError(t, do(t, "POST", u+"/v1/tenants", `{"name":"`+name+`"}`), 409, protocol.CodeConflict, "")
		checkError(t, do(t, "POST", u+"/v1/tenants", `{"name":"Bad Name"}`), 400, protocol.CodeInvalidArgument, "name")
		// A stale read is the follower's own, and catches up.
		e.c.Eventually("a stale read on "+f.ID+" to see "+name, func() error {
			if r := do(t, "GET", u+"/v1/tenants/"+name+"?stale=true", nil); r.status != 200 {
				return errorf("%s", r)
			}
			return nil
		})
	}

	// A follower cut off from the others knows no leader: 503.
	f := e.c.Followers()[0]
	e.c.Partition(f)
	e.c.Eventually(f.ID+" to answer 503 when cut off", func() error {
		r := do(t, "POST", f.URL+"/v1/tenants", `{"name":"cut"}`)
		if r.status != http.StatusServiceUnavailable {
			return errorf("%s", r)
		}
		checkError(t, r, http.StatusServiceUnavailable, protocol.CodeUnavailable, "")
		return nil
	})
	e.c.Heal()
	e.c.WaitForReplication()
	e.c.EnsureSame()
}

// Three servers started apart form one cluster through each other's HTTP
// APIs once the expected number is reachable.
func TestJoinerBootstrapExpect(t *testing.T) {
	e := newEnv(t, envConfig{Servers: 3, NoBootstrap: true})
	servers := e.c.Servers()
	ctx, cancel := context.WithTimeout(context.Background(), clustertest.Wait)
	defer cancel()
	errs := make(chan error, len(servers))
	for _, s := range servers {
		var peers []string
		for _, o := range servers {
			if o != s {
				peers = append(peers, o.HTTPAddr)
			}
		}
		j := &cluster.Joiner{Cluster: s.Cluster, Peers: peers, Expect: 3}
		go func() { errs <- j.Run(ctx) }()
	}
	// The new leader records its own address, as a server does.
	leader := e.c.Leader()
	for range servers {
		if err := <-errs; err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	members, err := leader.Cluster.Members(leader.Store.Snapshot())
	if err != nil || len(members) != 3 {
		t.Fatalf("members: %+v %v", members, err)
	}
	for _, m := range members {
		if !m.Voter || m.HTTPAddr == "" {
			t.Fatalf("member: %+v", m)
		}
	}
}

// registerOp is one client operation on the register: the label v of a
// tenant.
type registerOp struct {
	write bool
	value string
}

var registerModel = porcupine.Model{
	Init: func() any { return "init" },
	Step: func(st, in, out any) (bool, any) {
		op := in.(registerOp)
		if op.write {
			return true, op.value
		}
		return out.(string) == st.(string), st
	},
	DescribeOperation: func(in, out any) string {
		op := in.(registerOp)
		if op.write {
			return "put " + op.value
		}
		return fmt.Sprintf("get -> %v", out)
	},
}

// Concurrent clients write and read one tenant's label through every
// server while the leader is cut off and comes back: what they observe
// must be linearizable.
func TestLinearizableRegister(t *testing.T) {
	e := newEnv(t, envConfig{Servers: 3})
	must(t, 201, "POST", e.url()+"/v1/tenants", `{"name":"reg","labels":{"v":"init"}}`, nil)
	e.c.WaitForReplication()
	var urls []string
	for _, s := range e.c.Servers() {
		urls = append(urls, s.URL)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	const clients, duration = 4, 2 * time.Second

	var mu sync.Mutex
	var ops []porcupine.Operation
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(c), 7))
			for i := 0; time.Since(start) < duration; i++ {
				u := urls[rnd.IntN(len(urls))]
				op := porcupine.Operation{ClientId: c, Call: now()}
				if rnd.IntN(2) == 0 {
					v := fmt.Sprintf("c%d-%d", c, i)
					op.Input = registerOp{write: true, value: v}
					status, msg := send(client, "PATCH", u+"/v1/tenants/reg", `{"labels":{"v":"`+v+`"}}`)
					op.Return = now()
					switch {
					case status == 200:
					case refusedBeforeRaft(msg):
						continue // it did not happen
					default:
						// It may or may not have happened, at any time
						// from now on.
						op.Return = math.MaxInt64
					}
				} else {
					op.Input = registerOp{}
					status, body := send(client, "GET", u+"/v1/tenants/reg", "")
					op.Return = now()
					var tn protocol.Tenant
					if status != 200 || jsonUnmarshal([]byte(body), &tn) != nil {
						continue // a failed read tells nothing
					}
					op.Output = tn.Labels["v"]
				}
				mu.Lock()
				ops = append(ops, op)
				mu.Unlock()
			}
		}()
	}

	// Some operations before the fault, some while the old leader is cut
	// off, the rest after the heal.
	opsDone := func(n int) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(ops) < n {
				return errorf("%d operations done", len(ops))
			}
			return nil
		}
	}
	e.c.Eventually("clients to get going", opsDone(40))
	old := e.c.Leader()
	e.c.Partition(old)
	e.c.WaitForNewLeader(old)
	mu.Lock()
	n := len(ops)
	mu.Unlock()
	e.c.Eventually("clients to work with the new leader", opsDone(n+40))
	e.c.Heal()
	wg.Wait()

	var okWrites, reads, undecided int
	for _, op := range ops {
		switch {
		case !op.Input.(registerOp).write:
			reads++
		case op.Return == math.MaxInt64:
			undecided++
		default:
			okWrites++
		}
	}
	t.Logf("%d operations: %d acknowledged writes, %d undecided writes, %d reads", len(ops), okWrites, undecided, reads)
	if okWrites == 0 || reads == 0 {
		t.Fatal("the clients got nothing done")
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, 20*time.Second)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Fatal("the linearizability check timed out")
	default:
		for _, part := range info.PartialLinearizationsOperations() {
			if len(part) == 0 {
				continue
			}
			var steps []string
			for _, op := range part[0] {
				steps = append(steps, registerModel.DescribeOperation(op.Input, op.Output))
			}
			if len(steps) > 12 {
				steps = steps[len(steps)-12:]
			}
			t.Logf("longest linearizable prefix ends: %s", strings.Join(steps, ", "))
		}
		t.Fatal("the history is not linearizable")
	}
}

// send makes one request for the linearizability clients and returns its
// status and body; a failed request has status 0.
func send(c *http.Client, method, url, body string) (int, string) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, ""
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, ""
	}
	return resp.StatusCode, string(b)
}

// refusedBeforeRaft reports whether an error answer says the server
// refused the request before proposing it: no leader to forward to, or a
// leader not ready. Any other failure of a write leaves it undecided.
func refusedBeforeRaft(body string) bool {
	var e protocol.ErrorBody
	if jsonUnmarshal([]byte(body), &e) != nil || e.Error == nil || e.Error.Code != protocol.CodeUnavailable {
		return false
	}
	for _, m := range []string{"no cluster leader known", "forwarded to a server that is not the leader", "leader is catching up"} {
		if strings.Contains(e.Error.Message, m) {
			return true
		}
	}
	return false
}
