package e2e

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// lines collects what a command prints on one of its outputs.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		l.all = append(l.all, sc.Text())
		l.mu.Unlock()
	}
}

// since returns the lines from the nth on.
func (l *lines) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n > len(l.all) {
		return nil
	}
	return append([]string(nil), l.all[n:]...)
}

func (l *lines) String() string { return strings.Join(l.since(0), "\n") }

// index is the position of the first line from the nth on holding s, or -1.
func (l *lines) index(n int, s string) int {
	for i, line := range l.since(n) {
		if strings.Contains(line, s) {
			return n + i
		}
	}
	return -1
}

// instance logs -f follows the instance, not one replica: a restart
// replaces the replica, and the command says so on stderr and goes on
// with the new one's output; a stop ends it with exit 0. Then instance
// logs prints the last output of the stopped replica.
func TestCLILogsFollowInstance(t *testing.T) {
	c := StartCluster(t, 1)
	StartAgent(t, c)
	s := c.WaitForLeader()
	doc := demoInstance("ticker", 1)
	setEnv(doc, "DEMO_TICK", "200ms")
	createInstance(t, s, "acme", doc)
	old := waitHealthy(t, c, "acme", "ticker", 1)[0]

	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "instance", "logs", "acme/ticker", "-f", "-tail", "1", "-addr", s.URL())
	cmd.Env = childEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out, errs lines
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); out.read(stdout) }()
	go func() { defer wg.Done(); errs.read(stderr) }()
	exited := make(chan error, 1)
	go func() { wg.Wait(); exited <- cmd.Wait() }()
	defer func() {
		cancel()
		if t.Failed() {
			t.Logf("stdout of logs -f:\n%s\nstderr:\n%s", out.String(), errs.String())
		}
	}()
	ticks := func(from int) (bool, string) {
		n := 0
		for _, l := range out.since(from) {
			if tickLine.MatchString(strings.TrimSpace(l)) {
				n++
			}
		}
		return n >= 2, out.String()
	}
	eventually(t, waitTimeout, "ticks of the first replica", func() (bool, string) { return ticks(0) })

	cliOK(t, s, "instance", "restart", "acme/ticker")
	notice := "replica " + shortID(old.ID) + " stopped (restarted); following "
	eventually(t, waitTimeout, "the notice of the replica's replacement on stderr", func() (bool, string) {
		return errs.index(0, notice) >= 0, errs.String()
	})
	at := len(out.since(0))
	eventually(t, waitTimeout, "ticks of the new replica after the notice", func() (bool, string) { return ticks(at) })
	next := waitHealthy(t, c, "acme", "ticker", 1)[0]
	if line := errs.since(0)[errs.index(0, notice)]; line != notice+shortID(next.ID) {
		t.Errorf("notice %q, want it to name the new replica %s", line, shortID(next.ID))
	}

	cliOK(t, s, "instance", "stop", "acme/ticker")
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("logs -f ended with %v, want exit 0", err)
		}
	case <-ctx.Done():
		t.Fatal("logs -f did not end when the instance was stopped")
	}
	want := "replica " + shortID(next.ID) + " stopped (instance stopped); instance acme/ticker is stopped: nothing more to follow"
	if errs.index(0, want) < 0 {
		t.Errorf("stderr of logs -f:\n%s\nwant a line %q", errs.String(), want)
	}

	// The stopped replica's last output, said to be so.
	r := runCLI(t, s, "instance", "logs", "acme/ticker", "-tail", "3")
	if r.code != 0 || !strings.Contains(r.stdout, "shutting down") ||
		!strings.Contains(r.stderr, "replica "+shortID(next.ID)+" stopped (instance stopped); its last output:") {
		t.Errorf("logs of the stopped instance: %s", r)
	}
}
