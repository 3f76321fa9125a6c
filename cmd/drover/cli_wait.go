package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
)

// DefaultWaitTimeout bounds how long create and update follow a deployment.
const DefaultWaitTimeout = 5 * time.Minute

// eventsShown is how many recent events a failed wait prints.
const eventsShown = 5

// progress shows a rollout as it goes: on a terminal one line updated in
// place, elsewhere a line each time it changes.
type progress struct {
	w     io.Writer
	tty   bool
	last  string
	shown bool
}

func (p *progress) update(r *client.Progress) {
	line := rolloutLine(r)
	if line == p.last {
		return
	}
	p.last = line
	p.shown = true
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// end finishes the line a terminal was updating.
func (p *progress) end() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

// rolloutLine is one state of a rollout, for the progress display.
func rolloutLine(r *client.Progress) string {
	if r.Desired == 0 {
		return fmt.Sprintf("%s: %s still running", r.Instance.ID, count(r.Live, "replica"))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s version %d: %s placed, %s running, %s healthy",
		r.Instance.ID, r.Version, ratio(r.Placed, r.Desired), ratio(r.Running, r.Desired), ratio(r.Healthy, r.Desired))
	if n := len(r.Failed); n > 0 {
		fmt.Fprintf(&b, ", %d failed", n)
	}
	if d := r.Instance.Deployment; d != nil && d.ToVersion == r.Version {
		fmt.Fprintf(&b, "; deployment %s", strings.ReplaceAll(d.State, "_", " "))
	}
	return b.String()
}

// waitRollout follows instance tenant/name until its version is healthy,
// printing progress, and ends with a summary (nil) or the reason it failed
// with the replicas' messages and the last events (exit 1).
func (c *cli) waitRollout(tenant, name string, version uint64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	pw := c.out
	if c.json {
		pw = c.errw
	}
	p := &progress{w: pw, tty: isTerminal(pw)}
	start := c.now()
	r, err := c.api.WatchProgress(ctx, tenant, name, version, p.update)
	p.end()
	if c.json && r != nil {
		if err := c.doc(r.Instance); err != nil {
			return err
		}
	}
	id := protocol.InstanceID(tenant, name)
	var reason string
	var re *client.ProgressError
	switch {
	case err == nil && !r.Done():
		if !c.json {
			fmt.Fprintf(c.out, "The canaries of %s version %d are healthy; the deployment waits for them to be promoted\n", id, version)
		}
		return nil
	case err == nil && r.Desired == 0:
		if !c.json {
			fmt.Fprintf(c.out, "Instance %s runs no replica (%s)\n", id, c.now().Sub(start).Round(time.Second))
		}
		return nil
	case err == nil:
		if !c.json {
			fmt.Fprintf(c.out, "Instance %s version %d is healthy: %s replicas healthy (%s)\n",
				id, version, ratio(r.Healthy, r.Desired), c.now().Sub(start).Round(time.Second))
			if len(r.Replicas) > 0 {
				fmt.Fprintln(c.out)
				replicasTable(c.out, versionReplicas(r), c.now())
			}
		}
		return nil
	case errors.As(err, &re):
		reason = re.Reason
	case errors.Is(err, context.DeadlineExceeded) && c.ctx.Err() == nil:
		reason = fmt.Sprintf("timed out after %s waiting for %s version %d to be healthy", timeout, id, version)
		if r != nil {
			reason += " (" + ratio(r.Healthy, r.Desired) + " healthy)"
		}
		reason += "; the deployment goes on: see drover instance status " + id
	case c.ctx.Err() != nil:
		reason = fmt.Sprintf("stopped waiting for %s; the deployment goes on: see drover instance status %s", id, id)
	default:
		return err
	}
	return exitError{code: exitFailed, msg: c.failureReport(reason, r, tenant, name)}
}

// versionReplicas are the replicas of the rollout's version the scheduler
// wants running.
func versionReplicas(r *client.Progress) []*protocol.Replica {
	var out []*protocol.Replica
	for _, rep := range r.Replicas {
		if rep.Version == r.Version && rep.Desired == protocol.DesiredRun {
			out = append(out, rep)
		}
	}
	return out
}

// failureReport is the message of a failed wait: the reason, then what the
// replicas say, then the instance's last events.
func (c *cli) failureReport(reason string, r *client.Progress, tenant, name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Error: %s\n", reason)
	if r != nil {
		var said []*protocol.Replica
		for _, rep := range versionReplicas(r) {
			if rep.State != protocol.ReplicaHealthy && rep.Message != "" {
				said = append(said, rep)
			}
		}
		if len(said) > 0 {
			b.WriteString("\nReplicas:\n")
			for _, rep := range said {
				node := rep.Node
				if node == "" {
					node = "no node"
				}
				fmt.Fprintf(&b, "  %s (%s) %s: %s\n", rep.ID, node, rep.State, rep.Message)
			}
		}
	}
	// The wait's context may be over; the events get their own short one.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 5*time.Second)
	defer cancel()
	if evs, _, err := c.api.Events(ctx, tenant, name, nil); err == nil && len(evs) > 0 {
		if len(evs) > eventsShown {
			evs = evs[len(evs)-eventsShown:]
		}
		b.WriteString("\nRecent events:\n")
		eventsTable(&indent{w: &b}, evs)
	}
	return strings.TrimRight(b.String(), "\n")
}

// indent prefixes each line written through it with two spaces.
type indent struct {
	w   io.Writer
	mid bool
}

func (in *indent) Write(p []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" {
			continue
		}
		if !in.mid {
			if _, err := io.WriteString(in.w, "  "); err != nil {
				return 0, err
			}
		}
		if _, err := io.WriteString(in.w, line); err != nil {
			return 0, err
		}
		in.mid = !strings.HasSuffix(line, "\n")
	}
	return len(p), nil
}
