package e2e

// Scenarios of the issue "Server cluster": what a user sees of a
// three-server cluster through the HTTP API while servers fail, stop,
// restart, and the state is backed up and restored.

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// instanceDoc is a valid instance document (API.md). Its command is never
// run: no agent exists in these scenarios.
func instanceDoc(name string) map[string]any {
	return map[string]any{
		"name":        name,
		"environment": "staging",
		"replicas":    2,
		"spec": map[string]any{
			"version":   "1.0.0",
			"command":   []string{"/bin/sleep", "1000"},
			"env":       map[string]string{"LOG_LEVEL": "info"},
			"secrets":   map[string]string{"DB_PASSWORD": "hunter2"},
			"ports":     []string{"http"},
			"resources": map[string]any{"cpu_millis": 100, "memory_mb": 64},
		},
	}
}

// checkInstance says what is wrong with an answer for instanceDoc(name) of
// tenant, or "".
func checkInstance(r *Response, tenant, name string) string {
	if r.Status != http.StatusOK {
		return r.String()
	}
	if bytes.Contains(r.Body, []byte("hunter2")) {
		return "the answer shows the secret's value: " + r.String()
	}
	var in apiInstance
	if err := r.Decode(&in); err != nil {
		return err.Error()
	}
	switch {
	case in.ID != tenant+"/"+name || in.Name != name:
		return fmt.Sprintf("id %q name %q", in.ID, in.Name)
	case in.Environment != "staging" || in.Replicas != 2:
		return fmt.Sprintf("environment %q replicas %d", in.Environment, in.Replicas)
	case !slices.Equal(in.Spec.Command, []string{"/bin/sleep", "1000"}) || in.Spec.Version != "1.0.0":
		return fmt.Sprintf("spec.command %q spec.version %q", in.Spec.Command, in.Spec.Version)
	case in.Spec.Env["LOG_LEVEL"] != "info":
		return fmt.Sprintf("spec.env %v", in.Spec.Env)
	case in.Version == 0:
		return "version 0"
	}
	return ""
}

// checkStatus says what is wrong with a server's GET /v1/status answer of
// cluster c with the given leader, or "".
func checkStatus(st *apiStatus, c *Cluster, leaderID string) string {
	if st.Leader != leaderID {
		return fmt.Sprintf("leader %s, want %s", c.nameOf(st.Leader), c.nameOf(leaderID))
	}
	var ids, addrs []string
	voters, leaders := 0, 0
	for _, m := range st.Members {
		ids = append(ids, m.ID)
		addrs = append(addrs, m.HTTPAddr)
		if m.Voter {
			voters++
		}
		if m.State == "leader" {
			leaders++
			if m.ID != leaderID {
				return fmt.Sprintf("member %s is in state leader", c.nameOf(m.ID))
			}
		} else if m.State != "follower" {
			return fmt.Sprintf("member %s is in state %q", c.nameOf(m.ID), m.State)
		}
	}
	wantIDs, wantAddrs := c.IDs(), c.HTTPAddrs()
	sort.Strings(ids)
	sort.Strings(addrs)
	sort.Strings(wantIDs)
	sort.Strings(wantAddrs)
	switch {
	case voters != len(wantIDs) || leaders != 1:
		return fmt.Sprintf("%d voters and %d leaders in %+v", voters, leaders, st.Members)
	case !slices.Equal(ids, wantIDs):
		return fmt.Sprintf("member ids %v, want %v", ids, wantIDs)
	case !slices.Equal(addrs, wantAddrs):
		return fmt.Sprintf("member http_addrs %v, want %v", addrs, wantAddrs)
	}
	return ""
}

// createTenant creates a tenant through s, retrying while the cluster is
// unavailable, and returns the answer.
func createTenant(t *testing.T, s *Server, name string) *Response {
	t.Helper()
	r := s.Client().WithRetry(retryBudget).JSON(http.MethodPost, "/v1/tenants", map[string]string{"name": name}, nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("%s: want 201", r)
	}
	if r.Index() == 0 {
		t.Fatalf("%s: no X-Drover-Index", r)
	}
	return r
}

// tenantNames lists the tenants through c (path may carry a query).
func tenantNames(c *Client, path string) ([]string, *Response, error) {
	r, err := c.Try(http.MethodGet, path, nil)
	if err != nil {
		return nil, nil, err
	}
	if r.Status != http.StatusOK {
		return nil, r, fmt.Errorf("%s", r)
	}
	var ts []apiTenant
	if err := r.Decode(&ts); err != nil {
		return nil, r, err
	}
	names := make([]string, 0, len(ts))
	for _, t := range ts {
		names = append(names, t.Name)
	}
	return names, r, nil
}

// except returns servers without s.
func except(servers []*Server, s *Server) []*Server {
	return slices.DeleteFunc(servers, func(o *Server) bool { return o == s })
}

// missing returns the names of want that are not in have.
func missing(want, have []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

// awaitTenants waits until s's own state (a stale read) holds every tenant
// of want.
func awaitTenants(t *testing.T, s *Server, want []string) {
	t.Helper()
	eventually(t, waitTimeout, fmt.Sprintf("%s's own state to hold tenants %v", s.Name(), want), func() (bool, string) {
		have, _, err := tenantNames(s.Client(), "/v1/tenants?stale=true")
		if err != nil {
			return false, err.Error()
		}
		if m := missing(want, have); len(m) > 0 {
			return false, fmt.Sprintf("missing %v", m)
		}
		return true, ""
	})
}

// Scenario 1: three servers started with -bootstrap-expect 3 -join ...
// form one cluster; each one's own view shows the same leader and the
// three servers as voters.
func TestServerClusterForms(t *testing.T) {
	c := StartCluster(t, 3)
	eventually(t, waitTimeout, "every server's own status to show one leader and three voters", func() (bool, string) {
		leaderID := ""
		for _, s := range c.Servers() {
			st, err := s.status(true)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", s.Name(), err)
			}
			if leaderID == "" {
				leaderID = st.Leader
			}
			if bad := checkStatus(st, c, leaderID); bad != "" {
				return false, fmt.Sprintf("%s: %s", s.Name(), bad)
			}
		}
		return true, ""
	})
	// Without ?stale=true a follower forwards to the leader.
	for _, s := range c.Servers() {
		var st apiStatus
		s.Client().WithRetry(retryBudget).JSON(http.MethodGet, "/v1/status", nil, &st)
		if bad := checkStatus(&st, c, st.Leader); bad != "" || st.Leader == "" {
			t.Errorf("GET /v1/status on %s: leader %q, %s", s.Name(), st.Leader, bad)
		}
	}
}

// Scenario 2: a tenant and an instance created through a follower are read
// back from every server, linearizably right after the write, and from each
// server's own state once replicated; writes answer with X-Drover-Index.
func TestServerClusterWritesThroughFollower(t *testing.T) {
	c := StartCluster(t, 3)
	f := c.Followers()[0]
	rt := createTenant(t, f, "acme")
	ri := f.Client().WithRetry(retryBudget).JSON(http.MethodPost, "/v1/tenants/acme/instances", instanceDoc("crm"), nil)
	if ri.Status != http.StatusCreated || ri.Index() <= rt.Index() {
		t.Fatalf("%s (X-Drover-Index %q): want 201 with an index above the tenant's %d", ri, ri.Header.Get("X-Drover-Index"), rt.Index())
	}

	// Linearizable: acknowledged means every server answers with it, at
	// once (an election in between may only make it answer 503: retried).
	for _, s := range c.Servers() {
		r, err := s.Client().WithRetry(retryBudget).Try(http.MethodGet, "/v1/tenants/acme/instances/crm", nil)
		if err != nil {
			t.Fatal(err)
		}
		if bad := checkInstance(r, "acme", "crm"); bad != "" {
			t.Errorf("linearizable read on %s right after the write: %s", s.Name(), bad)
		}
		if r.Index() < ri.Index() {
			t.Errorf("%s: X-Drover-Index %d below the write's %d", r, r.Index(), ri.Index())
		}
		st, _, _ := s.Client().WithRetry(retryBudget).Do(http.MethodGet, "/v1/tenants/acme", nil)
		if st != http.StatusOK {
			t.Errorf("GET /v1/tenants/acme on %s: %d", s.Name(), st)
		}
	}

	// Stale: each server's own state, once replication reached it.
	for _, s := range c.Servers() {
		eventually(t, waitTimeout, s.Name()+"'s own state to hold acme/crm", func() (bool, string) {
			r, err := s.Client().Try(http.MethodGet, "/v1/tenants/acme/instances/crm?stale=true", nil)
			if err != nil {
				return false, err.Error()
			}
			if bad := checkInstance(r, "acme", "crm"); bad != "" {
				return false, bad
			}
			if r.Index() < ri.Index() {
				return false, fmt.Sprintf("X-Drover-Index %d below the write's %d", r.Index(), ri.Index())
			}
			return true, ""
		})
		r := s.Client().JSON(http.MethodGet, "/v1/tenants/acme/instances?stale=true", nil, nil)
		var ins []apiInstance
		if err := r.Decode(&ins); err != nil || len(ins) != 1 || ins[0].ID != "acme/crm" {
			t.Errorf("%s: want exactly acme/crm (%v)", r, err)
		}
	}
}

// Scenario 3: kill -9 of the leader. A new leader is elected and accepts
// writes; the time from the kill to the first accepted write is recorded
// (default Raft timings). The killed server, restarted on its data dir,
// comes back with all state, including writes made while it was down.
func TestServerClusterLeaderKill(t *testing.T) {
	c := StartCluster(t, 3) // default Raft timings: this test measures them
	want := []string{"before-kill"}
	createTenant(t, c.Server(0), "before-kill")
	old := c.WaitForLeader()
	survivors := except(c.Servers(), old)
	old.Kill()
	killed := time.Now()
	attempt := 0
	var firstWrite time.Duration
	eventually(t, waitTimeout, "a write accepted by the survivors after the leader's kill", func() (bool, string) {
		attempt++
		s := survivors[attempt%len(survivors)]
		name := fmt.Sprintf("after-kill-%d", attempt) // a new name each time: a timed-out try may still commit
		r, err := s.Client().WithTimeout(2*time.Second).Try(http.MethodPost, "/v1/tenants", map[string]string{"name": name})
		if err != nil {
			return false, fmt.Sprintf("attempt %d through %s: %v", attempt, s.Name(), err)
		}
		if r.Status != http.StatusCreated {
			return false, fmt.Sprintf("attempt %d through %s: %s", attempt, s.Name(), r)
		}
		firstWrite = time.Since(killed)
		want = append(want, name)
		return true, ""
	})
	recordTiming(t, "leader_kill9_to_first_accepted_write", firstWrite)

	leader := c.WaitForNewLeader(old)
	for i := range 3 {
		name := fmt.Sprintf("while-down-%d", i)
		createTenant(t, survivors[i%len(survivors)], name)
		want = append(want, name)
	}
	if r := leader.Client().WithRetry(retryBudget).JSON(http.MethodPost, "/v1/tenants/while-down-0/instances", instanceDoc("crm"), nil); r.Status != http.StatusCreated {
		t.Fatalf("%s: want 201", r)
	}

	old.Restart()
	awaitTenants(t, old, want)
	eventually(t, waitTimeout, "the restarted server's own state to hold while-down-0/crm", func() (bool, string) {
		r, err := old.Client().Try(http.MethodGet, "/v1/tenants/while-down-0/instances/crm?stale=true", nil)
		if err != nil {
			return false, err.Error()
		}
		bad := checkInstance(r, "while-down-0", "crm")
		return bad == "", bad
	})
	have, _, err := tenantNames(old.Client().WithRetry(retryBudget), "/v1/tenants")
	if err != nil {
		t.Fatalf("linearizable read through the restarted server: %v", err)
	}
	if m := missing(want, have); len(m) > 0 {
		t.Errorf("linearizable read through the restarted %s lacks %v", old.Name(), m)
	}
	eventually(t, waitTimeout, "the restarted server to see three voters and the new leader", func() (bool, string) {
		st, err := old.status(true)
		if err != nil {
			return false, err.Error()
		}
		if bad := checkStatus(st, c, leader.ID()); bad != "" {
			return false, bad
		}
		return true, ""
	})
}

// Scenario 4: stopping all three servers (SIGTERM) and starting them again
// keeps every acknowledged write, including writes in flight while the
// servers stop.
func TestServerClusterFullRestartKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and restarts a whole cluster: up to 10 s")
	}
	c := StartCluster(t, 3)
	const total, concurrency = 100, 16
	type result struct {
		acked bool
		index uint64
		err   string
	}
	results := make([]result, total)
	var acked atomic.Int32
	halfway := make(chan struct{})
	var once sync.Once
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s := c.Server(i % 3)
			r, err := s.Client().WithTimeout(10*time.Second).Try(http.MethodPost, "/v1/tenants", map[string]string{"name": fmt.Sprintf("t-%03d", i)})
			switch {
			case err != nil:
				results[i].err = err.Error()
			case r.Status != http.StatusCreated:
				results[i].err = r.String()
			default:
				results[i] = result{acked: true, index: r.Index()}
				if acked.Add(1) == total/2 {
					once.Do(func() { close(halfway) })
				}
			}
		}()
	}
	select {
	case <-halfway:
	case <-time.After(waitTimeout):
		t.Fatalf("fewer than %d of %d writes acknowledged after %v", total/2, total, waitTimeout)
	}
	// Stop while the rest are in flight: each may or may not be acknowledged.
	for _, s := range c.Servers() {
		start := time.Now()
		if code := s.Stop(); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM, want 0", s.Name(), code)
		}
		t.Logf("%s exited %v after SIGTERM", s.Name(), time.Since(start).Round(time.Millisecond))
	}
	wg.Wait()
	var want []string
	var maxIndex uint64
	failures := map[string]int{} // error -> count, for the log
	for i, r := range results {
		if r.acked {
			want = append(want, fmt.Sprintf("t-%03d", i))
			maxIndex = max(maxIndex, r.index)
		} else {
			failures[r.err]++
		}
	}
	t.Logf("%d writes acknowledged, %d not, before every server stopped", len(want), total-len(want))
	for err, n := range failures {
		t.Logf("%d writes failed with: %s", n, err)
	}

	for _, s := range c.Servers() {
		s.Restart()
	}
	c.WaitForLeader()
	for _, s := range c.Servers() {
		have, r, err := tenantNames(s.Client().WithRetry(retryBudget), "/v1/tenants")
		if err != nil {
			t.Fatalf("linearizable read through %s after the restart: %v", s.Name(), err)
		}
		if m := missing(want, have); len(m) > 0 {
			t.Errorf("after a full restart, %s lacks acknowledged writes %v", s.Name(), m)
		}
		if r.Index() < maxIndex {
			t.Errorf("%s: X-Drover-Index %d below the highest acknowledged write's %d", r, r.Index(), maxIndex)
		}
		awaitTenants(t, s, want)
	}
}

// Scenario 5: a snapshot saved from one cluster restores into a fresh,
// different cluster: the same tenants and instances on every server of
// the new one, which stays itself (its own members) and keeps working.
func TestServerClusterSnapshotRestore(t *testing.T) {
	a := StartCluster(t, 3)
	fa := a.Followers()[0]
	// Many more entries in A than B will have: the restored state's
	// indexes are then well above B's Raft index.
	var tenants []string
	for i := range 50 {
		name := fmt.Sprintf("tenant-%02d", i)
		createTenant(t, fa, name)
		tenants = append(tenants, name)
	}
	instances := []string{"tenant-00/crm", "tenant-00/shop", "tenant-07/crm"}
	for _, id := range instances {
		tenant, name, _ := strings.Cut(id, "/")
		fa.Client().WithRetry(retryBudget).JSON(http.MethodPost, "/v1/tenants/"+tenant+"/instances", instanceDoc(name), nil)
	}
	code, hdr, snap := fa.Client().WithTimeout(time.Minute).WithRetry(retryBudget).Do(http.MethodGet, "/v1/operator/snapshot", nil)
	if code != http.StatusOK || len(snap) == 0 {
		t.Fatalf("GET /v1/operator/snapshot: %d, %d bytes", code, len(snap))
	}
	t.Logf("snapshot of cluster A: %d bytes at index %s", len(snap), hdr.Get("X-Drover-Index"))
	for _, s := range a.Servers() {
		s.Kill() // the backup must not need its source
	}

	b := StartCluster(t, 3)
	fb := b.Followers()[0]
	createTenant(t, fb, "only-in-b") // replaced by the restore
	r := fb.Client().WithTimeout(time.Minute).WithRetry(retryBudget).JSON(http.MethodPut, "/v1/operator/snapshot", snap, nil)
	if r.Index() == 0 {
		t.Errorf("%s: no X-Drover-Index", r)
	}

	// Linearizable right after the restore, through every server. (A short
	// retry: a server that cannot forward answers 503 for good.)
	const retryShort = 3 * time.Second
	for _, s := range b.Servers() {
		have, _, err := tenantNames(s.Client().WithRetry(retryShort), "/v1/tenants")
		if err != nil {
			t.Errorf("linearizable read through %s after the restore: %v", s.Name(), err)
			continue
		}
		if m := missing(tenants, have); len(m) > 0 || slices.Contains(have, "only-in-b") {
			t.Errorf("tenants through %s after the restore: %v, want %v", s.Name(), have, tenants)
		}
	}
	// Each server's own state, once it received the restored state.
	for _, s := range b.Servers() {
		awaitTenants(t, s, tenants)
		for _, id := range instances {
			tenant, name, _ := strings.Cut(id, "/")
			r, err := s.Client().Try(http.MethodGet, "/v1/tenants/"+tenant+"/instances/"+name+"?stale=true", nil)
			if err != nil {
				t.Fatal(err)
			}
			if bad := checkInstance(r, tenant, name); bad != "" {
				t.Errorf("%s's own state after the restore, %s: %s", s.Name(), id, bad)
			}
		}
	}

	// Cluster B is still itself: its own members, and every server takes
	// writes whose index passes whatever a read answered before. (Not
	// WaitForLeader: it needs every server to forward, checked here.)
	var leader *Server
	eventually(t, waitTimeout, "cluster B's servers to name one leader", func() (bool, string) {
		var views string
		leader, views = b.agreedLeader()
		return leader != nil, views
	})
	for _, s := range b.Servers() {
		st, err := s.status(true)
		if err != nil {
			t.Fatal(err)
		}
		if bad := checkStatus(st, b, leader.ID()); bad != "" {
			t.Errorf("%s's status after the restore: %s", s.Name(), bad)
		}
	}
	_, read, err := tenantNames(leader.Client().WithRetry(retryShort), "/v1/tenants")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the restore, GET /v1/tenants on the leader answers X-Drover-Index %d", read.Index())
	for _, s := range b.Servers() {
		name := "after-restore-" + s.Name()
		w, err := s.Client().WithRetry(retryShort).Try(http.MethodPost, "/v1/tenants", map[string]string{"name": name})
		if err != nil {
			t.Fatal(err)
		}
		if w.Status != http.StatusCreated {
			t.Errorf("write through %s after the restore: %s", s.Name(), w)
			continue
		}
		t.Logf("write through %s after the restore: X-Drover-Index %d", s.Name(), w.Index())
		if w.Index() <= read.Index() {
			t.Errorf("write through %s after the restore answered X-Drover-Index %d, not above the %d a read answered before it: "+
				"a blocking query from that read would miss the write", s.Name(), w.Index(), read.Index())
		}
	}
}

// Scenario 6: a blocking query (?index=N&wait=10s, N the current
// X-Drover-Index) answers as soon as a write passes N, with the new data,
// long before its wait ends; without a write it waits its wait out.
func TestServerClusterBlockingQuery(t *testing.T) {
	c := StartCluster(t, 3)
	leader := c.WaitForLeader()
	f := c.Followers()
	createTenant(t, leader, "first")
	_, before, err := tenantNames(f[0].Client().WithRetry(retryBudget), "/v1/tenants")
	if err != nil {
		t.Fatal(err)
	}
	n := before.Index()

	start := time.Now()
	_, idle, err := tenantNames(f[0].Client(), fmt.Sprintf("/v1/tenants?index=%d&wait=300ms", n))
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond || idle.Index() != n {
		t.Errorf("with no write, ?index=%d&wait=300ms answered after %v with index %d: want the whole wait and index %d", n, waited, idle.Index(), n)
	}

	type answer struct {
		names []string
		r     *Response
		err   error
		at    time.Time
	}
	queries := map[string]*Server{
		fmt.Sprintf("/v1/tenants?index=%d&wait=10s", n):            f[0], // forwarded to the leader
		fmt.Sprintf("/v1/tenants?index=%d&wait=10s&stale=true", n): f[1], // served by the follower itself
	}
	answers := map[string]chan answer{}
	for path, s := range queries {
		ch := make(chan answer, 1)
		answers[path] = ch
		go func() {
			names, r, err := tenantNames(s.Client(), path)
			ch <- answer{names, r, err, time.Now()}
		}()
	}
	w := createTenant(t, leader, "second")
	wrote := time.Now()
	for path, ch := range answers {
		var a answer
		select {
		case a = <-ch:
		case <-time.After(waitTimeout):
			t.Fatalf("GET %s on %s: no answer after %v", path, queries[path].Name(), waitTimeout)
		}
		if a.err != nil {
			t.Errorf("GET %s on %s: %v", path, queries[path].Name(), a.err)
			continue
		}
		if a.r.Index() < w.Index() || !slices.Contains(a.names, "second") {
			t.Errorf("GET %s on %s answered index %d and %v: want an index of at least the write's %d and tenant second",
				path, queries[path].Name(), a.r.Index(), a.names, w.Index())
		}
		if d := a.at.Sub(wrote); d > 5*time.Second {
			t.Errorf("GET %s on %s answered %v after the write: it should wake at the write, not at the end of its 10s wait", path, queries[path].Name(), d)
		}
	}
}

// Scenario 7: SIGTERM to the leader hands leadership over before the
// process exits: a new leader is there at once and writes go on.
func TestServerClusterGracefulLeaderStop(t *testing.T) {
	c := StartCluster(t, 3)
	old := c.WaitForLeader()
	survivors := except(c.Servers(), old)

	// A writer through a survivor measures the pause in writes.
	var mu sync.Mutex
	var acks []time.Time
	stopWriter := make(chan struct{})
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		for i := 0; ; i++ {
			select {
			case <-stopWriter:
				return
			default:
			}
			r, err := survivors[0].Client().WithTimeout(2*time.Second).Try(http.MethodPost, "/v1/tenants", map[string]string{"name": fmt.Sprintf("w-%d", i)})
			if err == nil && r.Status == http.StatusCreated {
				mu.Lock()
				acks = append(acks, time.Now())
				mu.Unlock()
			}
		}
	}()
	acked := func(after time.Time) (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		n := len(acks)
		return n > 0 && acks[n-1].After(after), fmt.Sprintf("%d writes acknowledged", n)
	}
	eventually(t, waitTimeout, "the writer's first acknowledged write", func() (bool, string) { return acked(time.Time{}) })

	stopping := time.Now()
	if code := old.Stop(); code != 0 {
		t.Errorf("the leader exited with %d after SIGTERM, want 0", code)
	}
	leader := c.WaitForNewLeader(old)
	marker := time.Now()
	eventually(t, waitTimeout, "the writer's writes to go on after the leader's SIGTERM", func() (bool, string) { return acked(marker) })
	close(stopWriter)
	writer.Wait()
	var pause time.Duration
	for i := 1; i < len(acks); i++ {
		if acks[i].After(stopping) {
			pause = max(pause, acks[i].Sub(acks[i-1]))
		}
	}
	recordTiming(t, "leader_sigterm_longest_write_pause", pause)

	for _, s := range survivors {
		createTenant(t, s, "after-stop-via-"+s.Name())
	}
	if !slices.Contains(survivors, leader) {
		t.Errorf("new leader %s is not a survivor", leader.Name())
	}
	// Only the log tells a handover from an election after a timeout.
	log, err := os.ReadFile(old.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte("transferred leadership")) {
		t.Errorf("%s's log does not say it transferred leadership before shutting down", old.Name())
	}
}

// A paused (SIGSTOP) leader is replaced; resumed, it follows the new
// leader and serves what was written meanwhile.
func TestServerClusterPausedLeader(t *testing.T) {
	c := StartCluster(t, 3, WithFastRaft())
	old := c.WaitForLeader()
	old.Pause()
	leader := c.WaitForNewLeader(old)
	createTenant(t, leader, "while-paused")
	old.Cont()
	eventually(t, waitTimeout, old.Name()+" to follow the new leader after SIGCONT", func() (bool, string) {
		st, err := old.status(true)
		if err != nil {
			return false, err.Error()
		}
		if bad := checkStatus(st, c, leader.ID()); bad != "" {
			return false, bad
		}
		return true, ""
	})
	awaitTenants(t, old, []string{"while-paused"})
	createTenant(t, old, "after-resume")
}
