package api_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// blockingGet starts a blocking query and delivers its reply and how long
// it took.
func blockingGet(t *testing.T, url string) <-chan timedReply {
	ch := make(chan timedReply, 1)
	go func() {
		start := time.Now()
		r := do(t, "GET", url, nil)
		ch <- timedReply{r, time.Since(start)}
	}()
	return ch
}

type timedReply struct {
	reply
	took time.Duration
}

func await(t *testing.T, ch <-chan timedReply) timedReply {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("blocking query never answered")
	}
	panic("unreachable")
}

func TestBlockingQueryWakesOnWrite(t *testing.T) {
	e := newEnv(t, envConfig{})
	u := e.url()
	n := must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil).index()

	ch := blockingGet(t, fmt.Sprintf("%s/v1/tenants/acme?index=%d&wait=10s", u, n))
	w := must(t, 200, "PATCH", u+"/v1/tenants/acme", `{"labels":{"v":"2"}}`, nil).index()
	r := await(t, ch)
	var tn protocol.Tenant
	if err := jsonUnmarshal(r.body, &tn); err != nil || r.status != 200 {
		t.Fatalf("blocking read: %s", r)
	}
	if r.index() != w || tn.Labels["v"] != "2" {
		t.Fatalf("blocking read answered index %d with %+v, want index %d with the write", r.index(), tn, w)
	}
	if r.took > 8*time.Second {
		t.Fatalf("blocking read took %s: it waited out its wait", r.took)
	}
}

func TestBlockingQueryTimesOutWithSameIndex(t *testing.T) {
	e := newEnv(t, envConfig{})
	u := e.url()
	n := must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil).index()
	ch := blockingGet(t, fmt.Sprintf("%s/v1/tenants/acme?index=%d&wait=300ms", u, n))
	// A write to another table does not answer a query on tenants.
	e.c.MustPropose(state.CmdNodeRegister, state.NodeRegister{SecretHash: "h", Node: protocol.Node{ID: "n1"}})
	r := await(t, ch)
	if r.status != 200 || r.index() != n {
		t.Fatalf("blocking read after its wait: %s index %d, want index %d", r, r.index(), n)
	}
	if r.took < 250*time.Millisecond {
		t.Fatalf("blocking read answered after %s, before its wait of 300ms and without a change", r.took)
	}
	// Reads without ?index answer at once with the same index.
	if got := must(t, 200, "GET", u+"/v1/tenants/acme", nil, nil).index(); got != n {
		t.Fatalf("plain read index %d, want %d", got, n)
	}
	// An index already passed answers at once.
	r = await(t, blockingGet(t, fmt.Sprintf("%s/v1/tenants?index=%d&wait=10s", u, n-1)))
	if r.status != 200 || r.index() != n || r.took > 8*time.Second {
		t.Fatalf("read below the current index: %s index %d after %s", r, r.index(), r.took)
	}
}

// A query not tied to a table (the cluster status, plans) wakes on any write.
func TestBlockingStatusWakesOnAnyWrite(t *testing.T) {
	e := newEnv(t, envConfig{})
	u := e.url()
	for _, path := range []string{"/v1/status", "/v1/plans", "/v1/environments"} {
		n := must(t, 200, "GET", u+path, nil, nil).index()
		ch := blockingGet(t, fmt.Sprintf("%s%s?index=%d&wait=10s", u, path, n))
		w := must(t, 200, "PUT", u+"/v1/plans/p"+fmt.Sprint(n), `{"max_replicas":1}`, nil).index()
		r := await(t, ch)
		if r.status != 200 || r.index() < w || r.took > 8*time.Second {
			t.Fatalf("%s: answered %d at index %d after %s; the write was at %d", path, r.status, r.index(), r.took, w)
		}
	}
}

// A restore from an older backup answers queries blocked on a newer index,
// and later queries with that index see the restored state at once.
func TestBlockingQueryAcrossRestore(t *testing.T) {
	e := newEnv(t, envConfig{})
	u := e.url()
	must(t, 201, "POST", u+"/v1/tenants", `{"name":"acme"}`, nil)
	backup := must(t, 200, "GET", u+"/v1/operator/snapshot", nil, nil).body
	n := must(t, 201, "POST", u+"/v1/tenants", `{"name":"globex"}`, nil).index()

	ch := blockingGet(t, fmt.Sprintf("%s/v1/tenants?index=%d&wait=10s", u, n))
	must(t, 200, "PUT", u+"/v1/operator/snapshot", backup, nil)
	for _, r := range []timedReply{await(t, ch), await(t, blockingGet(t, fmt.Sprintf("%s/v1/tenants?index=%d&wait=10s", u, n)))} {
		var ts []protocol.Tenant
		if err := jsonUnmarshal(r.body, &ts); err != nil || r.status != 200 {
			t.Fatalf("blocking read across restore: %s", r)
		}
		if len(ts) != 1 || ts[0].Name != "acme" || r.index() <= n || r.took > 8*time.Second {
			t.Fatalf("blocking read across restore: %d tenants at index %d after %s", len(ts), r.index(), r.took)
		}
	}
}
