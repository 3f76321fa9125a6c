package e2e

// The chaos suite's faults: a seeded schedule of one fault at a time, each
// held for a few seconds, then healed, and the cluster given a leader
// again before the next.

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"
)

// Kinds of faults.
const (
	faultKill     = "kill-9"             // SIGKILL a server, start it again
	faultPause    = "pause"              // SIGSTOP a server, SIGCONT it
	faultRestart  = "restart"            // SIGTERM a server and start it again
	faultMinority = "partition-minority" // a follower cut off from the others
	faultMajority = "partition-leader"   // the leader cut off: the majority elects
	faultBridge   = "partition-bridge"   // two servers cut from each other, both reach the third
	faultOneWay   = "partition-one-way"  // one server cannot open connections to another; the reverse works
	faultAgentCut = "agent-cut"          // an agent's connections go silent past its TTL
)

var faultKinds = []string{faultKill, faultPause, faultRestart, faultMinority, faultMajority, faultBridge, faultOneWay, faultAgentCut}

// agentCutHold is how long an agent stays cut off: past the servers'
// heartbeat TTL (3 s) and their grace.
const agentCutHold = 10 * time.Second

// nemesis injects faults into a cluster whose servers run in network
// namespaces, and into an agent that reaches them through proxies.
type nemesis struct {
	t       *testing.T
	c       *Cluster
	rnd     *rand.Rand
	proxies []*Proxy
	agent   *Agent
	start   time.Time
	faults  []faultRecord
}

// run injects faults one after another for d, each held 2-6 s, with a
// pause of 1-3 s after each heal.
func (n *nemesis) run(d time.Duration) {
	n.t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		kind := faultKinds[n.rnd.IntN(len(faultKinds))]
		hold := time.Duration(2000+n.rnd.IntN(4000)) * time.Millisecond
		rec := faultRecord{Kind: kind, Start: n.since()}
		heal := n.inject(kind, &rec)
		n.t.Logf("chaos %s: %s %s", rec.Start, kind, rec.Target)
		if kind == faultAgentCut {
			hold = agentCutHold
		}
		if kind != faultRestart {
			time.Sleep(hold)
		}
		heal()
		rec.Healed = n.since()
		n.faults = append(n.faults, rec)
		n.c.WaitForLeader()
		if kind == faultAgentCut {
			n.agent.WaitReady()
		}
		time.Sleep(time.Duration(1000+n.rnd.IntN(2000)) * time.Millisecond)
	}
}

func (n *nemesis) since() string { return time.Since(n.start).Round(time.Millisecond).String() }

// pick returns the leader half the time, else any server.
func (n *nemesis) pick() *Server {
	if l := n.c.Leader(); l != nil && n.rnd.IntN(2) == 0 {
		return l
	}
	return n.c.Server(n.rnd.IntN(len(n.c.Servers())))
}

// inject starts a fault and returns what heals it.
func (n *nemesis) inject(kind string, rec *faultRecord) (heal func()) {
	n.t.Helper()
	servers := n.c.Servers()
	switch kind {
	case faultKill:
		s := n.pick()
		rec.Target = s.Name()
		s.Kill()
		return s.Restart
	case faultPause:
		s := n.pick()
		rec.Target = s.Name()
		s.Pause()
		return s.Cont
	case faultRestart:
		s := n.pick()
		rec.Target = s.Name()
		s.Restart()
		return func() {}
	case faultMinority, faultMajority:
		leader := n.c.WaitForLeader()
		alone := leader
		if kind == faultMinority {
			others := except(n.c.Servers(), leader)
			alone = others[n.rnd.IntN(len(others))]
		}
		rec.Target = alone.Name()
		for _, o := range except(n.c.Servers(), alone) {
			cutBetween(alone, o)
		}
	case faultBridge:
		n.rnd.Shuffle(len(servers), func(i, j int) { servers[i], servers[j] = servers[j], servers[i] })
		rec.Target = fmt.Sprintf("%s-/-%s, both reach %s", servers[0].Name(), servers[1].Name(), servers[2].Name())
		cutBetween(servers[0], servers[1])
	case faultOneWay:
		from := n.pick()
		others := except(n.c.Servers(), from)
		to := others[n.rnd.IntN(len(others))]
		rec.Target = fmt.Sprintf("%s cannot reach %s", from.Name(), to.Name())
		to.Netns().Refuse([]string{from.Netns().NsIP}, portOf(n.t, to.Addr()), portOf(n.t, to.RaftAddr()))
	case faultAgentCut:
		rec.Target = n.agent.Name()
		for _, p := range n.proxies {
			p.Halt()
		}
		return func() {
			for _, p := range n.proxies {
				p.Resume()
			}
		}
	default:
		n.t.Fatalf("unknown fault %q", kind)
	}
	return func() {
		for _, s := range n.c.Servers() {
			s.Netns().AcceptAll()
		}
	}
}

// cutBetween drops all traffic between two servers, both ways.
func cutBetween(a, b *Server) {
	a.Netns().Refuse([]string{b.Netns().NsIP})
	b.Netns().Refuse([]string{a.Netns().NsIP})
}

// portOf is the port of host:port.
func portOf(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
