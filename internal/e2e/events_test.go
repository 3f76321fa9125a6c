package e2e

// Scenarios of the event stream (GET /v1/events, `drover events`): what an
// operator following the cluster sees, and a reader that loses its server.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
)

// `drover events -f -topic instance,deployment` prints an instance's
// creation, its replicas coming up, a scale and the deployments as they
// happen.
func TestEventsCLIFollowsAnInstance(t *testing.T) {
	c := StartCluster(t, 3, WithFastRaft())
	StartAgent(t, c)
	leader := c.Leader()
	follower := c.Followers()[0]

	want, seen := followCLI(t, follower, "events", "-f", "-topic", "instance,deployment")
	createInstance(t, leader, "acme", demoInstance("web", 1))
	want("instance", "created", "acme/web", "created with 1 replica")
	want("instance", "replica-healthy", "acme/web")
	want("deployment", "acme/web", "succeeded")
	leader.Client().JSON(http.MethodPost, instancePath("acme", "web")+"/scale", map[string]int{"replicas": 2}, nil)
	want("instance", "scaled", "acme/web", "replicas 1 -> 2")
	want("instance", "replica-placed", "acme/web")
	want("instance", "replica-healthy", "acme/web")
	for _, l := range *seen { // ID DATE TIME TOPIC ...
		if f := strings.Fields(l); len(f) < 4 || f[3] != "instance" && f[3] != "deployment" {
			t.Fatalf("asked for instance and deployment events, got %q", l)
		}
	}
}

// followCLI starts a CLI command that follows (drover events -f, say)
// against s, ended with the test. want waits for a line holding every
// part and returns it; seen holds the lines printed so far.
func followCLI(t *testing.T, s *Server, args ...string) (want func(parts ...string) string, seen *[]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binPath, append(args, "-addr", s.URL())...)
	cmd.Env = childEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	seen = new([]string)
	what := "drover " + strings.Join(args, " ")
	want = func(parts ...string) string {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("%s ended; printed:\n%s", what, strings.Join(*seen, "\n"))
				}
				*seen = append(*seen, l)
				if containsAll(l, parts...) {
					return l
				}
			case <-deadline:
				t.Fatalf("%s printed no line with %q within 60s; printed:\n%s", what, parts, strings.Join(*seen, "\n"))
			}
		}
	}
	return want, seen
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// A reader of the stream whose server is killed (the leader, kill -9)
// resumes on another server after the last event it got, while writes go
// on: in the end it has every event once, in order, the same as a survivor
// streams from the start.
func TestEventsResumeAcrossALeaderKill(t *testing.T) {
	c := StartCluster(t, 3, WithFastRaft())
	leader := c.Leader()
	api := func(s *Server) *client.Client {
		cl, err := client.New(client.Config{Address: s.URL()})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}

	// The writer creates tenants through whichever server answers, as a
	// client does when a server dies: on each failure it moves on to the
	// next and repeats the create (409 means an earlier try committed).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		servers := c.Servers()
		for i, at := 0, 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("t%04d", i)
			for tries := 0; tries < 50; tries++ {
				s := servers[at%len(servers)]
				r, err := s.Client().WithTimeout(2*time.Second).Try(http.MethodPost, "/v1/tenants", map[string]string{"name": name})
				if err == nil && (r.OK() || r.Status == http.StatusConflict) {
					break
				}
				at++
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	var got []*protocol.StreamEvent
	read := func(s *Server, after *protocol.EventID, until func() bool) (protocol.EventID, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		return api(s).EventStream(ctx, client.EventsOptions{After: after, Follow: true}, func(e *protocol.StreamEvent) error {
			got = append(got, e)
			if until() {
				return errDone
			}
			return nil
		})
	}
	// Read from the leader until it has given some events, kill it while
	// the stream is open, and go on reading on a survivor.
	killed := make(chan error, 1)
	go func() {
		time.Sleep(2 * time.Second)
		leader.Kill()
		killed <- nil
	}()
	last, err := read(leader, nil, func() bool { return false })
	if err == nil || err == errDone {
		t.Fatalf("the stream from the killed leader ended with %v, want an error", err)
	}
	<-killed
	if len(got) == 0 {
		t.Fatal("no event read from the leader before its kill")
	}
	before := len(got)
	survivor := c.WaitForNewLeader(leader)
	target := len(got) + 50
	if _, err := read(survivor, &last, func() bool { return len(got) >= target }); err != errDone {
		t.Fatalf("resumed stream ended with %v after %d events", err, len(got)-before)
	}
	close(stop)
	wg.Wait()

	// The same events, read in one go from another survivor.
	var other *Server
	for _, s := range c.Servers() {
		if s != leader && s != survivor {
			other = s
		}
	}
	end := got[len(got)-1].ID()
	var whole []*protocol.StreamEvent
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err = api(other).EventStream(ctx, client.EventsOptions{Follow: true}, func(e *protocol.StreamEvent) error {
		whole = append(whole, e)
		if !e.ID().Before(end) {
			return errDone
		}
		return nil
	})
	if err != errDone {
		t.Fatalf("reading the whole stream from %s: %v", other.Name(), err)
	}
	if a, b := eventIDs(got), eventIDs(whole); a != b {
		t.Fatalf("events read across the kill (%d, %d before it) differ from the whole stream (%d):\n got %s\nwant %s",
			len(got), before, len(whole), a, b)
	}
}

var errDone = fmt.Errorf("done")

func eventIDs(evs []*protocol.StreamEvent) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.ID().String() + " ")
	}
	return b.String()
}
