package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/drover-dev/drover/internal/backoff"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// SelfInfo is what a server tells others about itself while a cluster forms
// (GET /v1/internal/self).
type SelfInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Leader   string `json:"leader,omitempty"`
	HasState bool   `json:"has_state"`
	// LogVersion is the newest log version this server's build knows
	// (state.LogVersion); builds older than log versions send none.
	LogVersion int `json:"log_version"`
}

// JoinRequest asks the leader to add a server (POST /v1/internal/join).
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// Self returns this server's SelfInfo.
func (c *Cluster) Self() SelfInfo {
	has, _ := c.HasState()
	leader, _ := c.Leader()
	return SelfInfo{ID: c.cfg.ID, RaftAddr: c.RaftAddr(), HTTPAddr: c.cfg.HTTPAddr, Leader: leader, HasState: has, LogVersion: state.LogVersion}
}

// Joiner forms or joins a cluster through other servers' HTTP APIs.
type Joiner struct {
	Cluster *Cluster
	// Peers are other servers' HTTP addresses (host:port).
	Peers []string
	// Expect is the number of servers to wait for before bootstrapping; 0
	// means never bootstrap, only join an existing cluster.
	Expect int
	// Scheme is "http" or "https"; Client makes the calls.
	Scheme string
	Client *http.Client
}

// Run retries with backoff until this server is a member of a cluster with
// a leader and its HTTP address is recorded in the state, or ctx ends.
func (j *Joiner) Run(ctx context.Context) error {
	c := j.Cluster
	if j.Scheme == "" {
		j.Scheme = "http"
	}
	if j.Client == nil {
		j.Client = &http.Client{Timeout: 5 * time.Second}
	}
	wait := backoff.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second, Jitter: true}
	for {
		err := j.step(ctx)
		if err == nil {
			return nil
		}
		if n := wait.Failures(); n > 0 && n%10 == 0 {
			c.logger.Warn("still trying to form or join the cluster", "peers", j.Peers, "expect", j.Expect, "error", err)
		} else {
			c.logger.Debug("join attempt failed", "error", err)
		}
		if !backoff.Sleep(ctx, wait.Next()) {
			return ctx.Err()
		}
	}
}

func (j *Joiner) step(ctx context.Context) error {
	c := j.Cluster
	has, err := c.HasState()
	if err != nil {
		return err
	}
	self := JoinRequest{ID: c.cfg.ID, RaftAddr: c.RaftAddr(), HTTPAddr: c.cfg.HTTPAddr}
	if has {
		// A member already: make sure the leader knows our HTTP address.
		return j.postJoin(ctx, c.cfg.HTTPAddr, self)
	}
	found := map[string]protocol.Member{self.ID: {ID: self.ID, RaftAddr: self.RaftAddr, HTTPAddr: self.HTTPAddr}}
	var lastErr error
	for _, p := range j.Peers {
		var info SelfInfo
		if err := j.call(ctx, http.MethodGet, p, "/v1/internal/self", nil, &info); err != nil {
			lastErr = err
			continue
		}
		if info.Leader != "" || info.HasState {
			// A cluster exists: ask to be added.
			return j.postJoin(ctx, p, self)
		}
		found[info.ID] = protocol.Member{ID: info.ID, RaftAddr: info.RaftAddr, HTTPAddr: info.HTTPAddr}
	}
	if j.Expect == 0 || len(found) < j.Expect {
		if lastErr == nil {
			lastErr = fmt.Errorf("found %d of %d expected servers", len(found), j.Expect)
		}
		return lastErr
	}
	servers := make([]protocol.Member, 0, len(found))
	for _, m := range found {
		servers = append(servers, m)
	}
	sort.Slice(servers, func(a, b int) bool { return servers[a].ID < servers[b].ID })
	c.logger.Info("bootstrapping cluster", "servers", len(servers))
	if err := c.Bootstrap(servers); err != nil {
		return err
	}
	return fmt.Errorf("bootstrapped; registering next")
}

func (j *Joiner) postJoin(ctx context.Context, addr string, req JoinRequest) error {
	return j.call(ctx, http.MethodPost, addr, "/v1/internal/join", req, nil)
}

func (j *Joiner) call(ctx context.Context, method, addr, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, j.Scheme+"://"+addr+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := j.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, addr+path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
