package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/drover-dev/drover/protocol"
)

// HeaderReplica names the replica whose output a log stream carries.
const HeaderReplica = "X-Drover-Replica"

// LogOptions choose what Logs streams.
type LogOptions struct {
	Replica string // a replica id; the server picks a running one when empty
	Tail    int    // lines of history; the server's default when negative
	Follow  bool   // keep streaming new output until ctx ends
}

// LogStream is a replica's output as plain text. The caller closes it.
type LogStream struct {
	io.ReadCloser
	// Replica is the id of the replica, the server's choice when the
	// options named none.
	Replica string
}

// Logs streams a replica's output. With Follow it ends when ctx does, or
// when the replica's process is gone for good (FollowLogs then goes on
// with another replica).
func (c *Client) Logs(ctx context.Context, tenant, name string, o LogOptions) (*LogStream, error) {
	v := url.Values{}
	if o.Replica != "" {
		v.Set("replica", o.Replica)
	}
	if o.Tail >= 0 {
		v.Set("tail", strconv.Itoa(o.Tail))
	}
	if o.Follow {
		v.Set("follow", "true")
	}
	resp, err := c.send(ctx, Request{Method: http.MethodGet, Path: instancePath(tenant, name) + "/logs", Query: v})
	if err != nil {
		return nil, err
	}
	id := resp.Header.Get(HeaderReplica)
	if id == "" {
		id = o.Replica
	}
	return &LogStream{ReadCloser: resp.Body, Replica: id}, nil
}

// LogNotice is a change in what FollowLogs follows, for the caller to tell
// the user.
type LogNotice struct {
	// Ended is the replica followed until now, when it stopped (its
	// StopReason says why, when the servers stopped it).
	Ended *protocol.Replica
	// Next is the replica followed from now on.
	Next *protocol.Replica
	// Waiting is set when no replica runs to be followed yet.
	Waiting bool
	// Over, when set, says why no more output will come: FollowLogs ends.
	Over string
	// Reconnect is set when the stream of a replica that still runs ended
	// (its node disconnected, or the stream fell behind) and is opened
	// again.
	Reconnect bool
}

// followGrace is how long a stream may go on once the state says its
// replica ended: the agent ends it by itself after the last output.
const followGrace = 3 * time.Second

// settleWait bounds the wait for the state to say why a stream ended: the
// agent's report of the replica's end may come after its stream's end.
const settleWait = 5 * time.Second

// FollowLogs writes to w the output of a replica of instance tenant/name
// and what it goes on writing, like Logs with Follow, but follows the
// instance: when the replica stops, it goes on with the newest healthy
// replica (the newest running one if none is healthy), o.Tail lines of its
// output first, and tells note. It ends (nil) when ctx ends, when the
// instance is stopped, scaled to 0 or deleted, or, when o names a replica,
// when that replica stops; note hears why.
func (c *Client) FollowLogs(ctx context.Context, tenant, name string, o LogOptions, w io.Writer, note func(LogNotice)) error {
	pinned, tail := o.Replica != "", o.Tail
	o.Follow = true
	quiet := func(err error) error {
		if ctx.Err() != nil {
			return nil // interrupted: not an error
		}
		return err
	}
	for {
		cur, err := c.followStream(ctx, tenant, name, o, w)
		if err != nil {
			return quiet(err)
		}
		n, err := c.afterStream(ctx, tenant, name, cur)
		if err != nil {
			return quiet(err)
		}
		if pinned && n.Ended != nil {
			note(LogNotice{Ended: n.Ended, Over: n.Over})
			return nil
		}
		note(n)
		if n.Waiting {
			if n, err = c.awaitReplica(ctx, tenant, name); err != nil {
				return quiet(err)
			}
			note(n)
		}
		switch {
		case n.Over != "":
			return nil
		case n.Reconnect:
			if err := sleep(ctx, retryDelay); err != nil {
				return nil
			}
			o.Replica, o.Tail = cur, 0
		default:
			o.Replica, o.Tail = n.Next.ID, tail
		}
	}
}

// followStream copies one replica's followed output to w until the stream
// ends, or until a while after the state says the replica ended (an agent
// that cannot tell would follow its files for ever). It returns the
// replica's id, and an error only when the stream cannot be opened or w
// fails: a broken stream is an end like another.
func (c *Client) followStream(ctx context.Context, tenant, name string, o LogOptions, w io.Writer) (string, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.Logs(sctx, tenant, name, o)
	if err != nil {
		return "", err
	}
	defer s.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.awaitEnded(sctx, tenant, name, s.Replica)
		if sleep(sctx, followGrace) == nil {
			cancel()
		}
	}()
	ew := &errWriter{w: w}
	_, _ = io.Copy(ew, s)
	cancel()
	wg.Wait()
	return s.Replica, ew.err
}

// errWriter keeps the first error of its writer: io.Copy does not say
// which side failed.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// awaitEnded returns once replica id of tenant/name has ended (or is gone
// from the state), or when ctx ends.
func (c *Client) awaitEnded(ctx context.Context, tenant, name, id string) {
	var index uint64
	for ctx.Err() == nil {
		reps, m, err := c.Replicas(ctx, tenant, name, &QueryOptions{Index: index, Wait: maxBlock})
		if err == nil {
			if r := findReplica(reps, id); r == nil || r.Ended() {
				return
			}
		}
		if err != nil || m.Index == 0 {
			if sleep(ctx, retryDelay) != nil {
				return
			}
		}
		index = m.Index
	}
}

// afterStream says what follows the end of the stream of replica id: the
// replica ended (and what replaces it), or it still runs (Reconnect). The
// state may say so only a moment after the stream's end.
func (c *Client) afterStream(ctx context.Context, tenant, name, id string) (LogNotice, error) {
	deadline := time.Now().Add(settleWait)
	var index uint64
	for {
		in, reps, m, err := c.instanceReplicas(ctx, tenant, name, &QueryOptions{Index: index, Wait: max(time.Until(deadline), time.Millisecond)})
		if errors.Is(err, protocol.ErrNotFound) {
			return LogNotice{Ended: &protocol.Replica{ID: id}, Over: deleted(tenant, name)}, nil
		}
		if err != nil {
			return LogNotice{}, err
		}
		r := findReplica(reps, id)
		if r != nil && r.Desired == protocol.DesiredRun && !r.Terminal() {
			if time.Now().After(deadline) {
				return LogNotice{Next: r, Reconnect: true}, nil
			}
			if m.Index == 0 {
				if err := sleep(ctx, retryDelay); err != nil {
					return LogNotice{}, err
				}
			}
			index = m.Index
			continue
		}
		if r == nil { // dropped from the history already
			r = &protocol.Replica{ID: id, State: protocol.ReplicaStopped}
		}
		n := LogNotice{Ended: r, Over: overOf(in)}
		if n.Over == "" {
			n.Next = pickReplica(reps)
			n.Waiting = n.Next == nil
		}
		return n, nil
	}
}

// awaitReplica waits until tenant/name has a replica to follow (Next), or
// wants none (Over).
func (c *Client) awaitReplica(ctx context.Context, tenant, name string) (LogNotice, error) {
	var index uint64
	for {
		in, reps, m, err := c.instanceReplicas(ctx, tenant, name, &QueryOptions{Index: index, Wait: maxBlock})
		switch {
		case errors.Is(err, protocol.ErrNotFound):
			return LogNotice{Over: deleted(tenant, name)}, nil
		case err != nil && !Retryable(err):
			return LogNotice{}, err
		case err == nil:
			if o := overOf(in); o != "" {
				return LogNotice{Over: o}, nil
			}
			if r := pickReplica(reps); r != nil {
				return LogNotice{Next: r}, nil
			}
		}
		if err != nil || m.Index == 0 {
			if err := sleep(ctx, retryDelay); err != nil {
				return LogNotice{}, err
			}
		}
		index = m.Index
	}
}

// instanceReplicas reads an instance's replicas (a blocking query with q),
// then the instance.
func (c *Client) instanceReplicas(ctx context.Context, tenant, name string, q *QueryOptions) (*protocol.Instance, []*protocol.Replica, Meta, error) {
	reps, m, err := c.Replicas(ctx, tenant, name, q)
	if err != nil {
		return nil, nil, m, err
	}
	in, _, err := c.Instance(ctx, tenant, name, nil)
	return in, reps, m, err
}

func deleted(tenant, name string) string {
	return "instance " + protocol.InstanceID(tenant, name) + " was deleted"
}

// overOf says why instance in wants no replica running, or "".
func overOf(in *protocol.Instance) string {
	switch {
	case in.Stopped:
		return "instance " + in.ID + " is stopped"
	case in.Replicas == 0:
		return "instance " + in.ID + " is scaled to 0 replicas"
	}
	return ""
}

// pickReplica is the replica to follow: the newest healthy one, else the
// newest whose process runs; nil if none does.
func pickReplica(reps []*protocol.Replica) *protocol.Replica {
	var best *protocol.Replica
	rank := func(r *protocol.Replica) int {
		if !r.Holds() {
			return 0
		}
		switch r.State {
		case protocol.ReplicaHealthy:
			return 2
		case protocol.ReplicaRunning, protocol.ReplicaUnhealthy:
			return 1
		}
		return 0
	}
	for _, r := range reps {
		if k := rank(r); k > 0 && (best == nil || k > rank(best) || k == rank(best) && r.CreateIndex > best.CreateIndex) {
			best = r
		}
	}
	return best
}

func findReplica(reps []*protocol.Replica, id string) *protocol.Replica {
	for _, r := range reps {
		if r.ID == id {
			return r
		}
	}
	return nil
}
