package e2e

import (
	"strings"
	"testing"
)

// scale, restart, stop and start -wait follow the change as create does:
// progress, then a summary once it is done, exit 0; without -wait they
// return at once.
func TestCLILifecycleWait(t *testing.T) {
	c := StartCluster(t, 1)
	StartAgent(t, c)
	s := c.WaitForLeader()
	doc := demoInstance("web", 1)
	specOf(doc)["update"] = map[string]any{"min_healthy_time": "200ms", "healthy_deadline": "1m"}
	createInstance(t, s, "acme", doc)
	first := waitHealthy(t, c, "acme", "web", 1)[0]

	for _, tc := range []struct {
		args []string
		want []string // lines, in order
		then func(t *testing.T)
	}{
		{[]string{"instance", "scale", "acme/web", "2", "-wait"},
			[]string{"Scaled acme/web to 2 replicas", "2/2 healthy", "Instance acme/web version 1 is healthy: 2/2 replicas healthy"},
			func(t *testing.T) { waitHealthy(t, c, "acme", "web", 2) }},
		{[]string{"instance", "scale", "acme/web", "1", "-wait"},
			[]string{"Scaled acme/web to 1 replica ", "Instance acme/web version 1 is healthy: 1/1 replicas healthy"}, nil},
		{[]string{"instance", "restart", "acme/web", "-wait"},
			[]string{"Restarting acme/web", "Instance acme/web version 1 is healthy: 1/1 replicas healthy"},
			func(t *testing.T) {
				// Healthy means the new replica is, not the one restarted.
				for _, r := range waitHealthy(t, c, "acme", "web", 1) {
					if r.ID == first.ID {
						t.Errorf("after restart -wait, the healthy replica is still %s", shortID(first.ID))
					}
				}
			}},
		{[]string{"instance", "stop", "acme/web", "-wait"},
			[]string{"Stopping acme/web", "Instance acme/web runs no replica"},
			func(t *testing.T) {
				if out := cliOK(t, s, "instance", "status", "acme/web"); !strings.Contains(out, "No live replicas.") {
					t.Errorf("status after stop -wait:\n%s", out)
				}
			}},
		{[]string{"instance", "start", "acme/web", "-wait"},
			[]string{"Starting acme/web", "Instance acme/web version 1 is healthy: 1/1 replicas healthy"}, nil},
	} {
		out := cliOK(t, s, tc.args...)
		t.Logf("drover %s:\n%s", strings.Join(tc.args, " "), out)
		rest := out
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Fatalf("drover %s printed:\n%s\nwant, in order: %q", strings.Join(tc.args, " "), out, tc.want)
			}
			rest = rest[i+len(w):]
		}
		if tc.then != nil {
			tc.then(t)
		}
	}
}
