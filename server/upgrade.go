package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/drover-dev/drover/server/cluster"
	"github.com/drover-dev/drover/server/state"
)

// upgradeEvery is how often, at least, the leader looks again at the
// servers' builds while the cluster's log version is older than its own.
const upgradeEvery = 2 * time.Second

// upgradeLog raises the cluster's log version to this build's once every
// voter runs a build that knows it (state/version.go): during a rolling
// upgrade of Drover, the servers go on with the older version's commands
// and behaviour until the last one is upgraded. It runs while this server
// leads, and ends once the log is at its version.
func (s *Server) upgradeLog(ctx context.Context, peers *http.Client, scheme string) {
	waiting := ""
	for {
		snap := s.store.Snapshot()
		if snap.LogVersion() >= state.LogVersion {
			return
		}
		seen := snap.Index(state.TableServers)
		behind, err := s.serversBehind(ctx, snap, peers, scheme)
		switch {
		case err != nil:
			s.logger.Debug("log version: cannot list the servers", "error", err)
		case behind != "":
			if behind != waiting {
				s.logger.Info("log version: waiting for every server to run this build before using its new commands",
					"cluster", snap.LogVersion(), "build", state.LogVersion, "behind", behind)
				waiting = behind
			}
		default:
			if _, err := s.cluster.Propose(ctx, state.CmdLogVersion, state.LogVersionSet{Version: state.LogVersion}, nil); err != nil {
				s.logger.Warn("log version: raise", "error", err)
			} else {
				s.logger.Info("log version raised: every server runs this build", "version", state.LogVersion)
				return
			}
		}
		// Again when a server's record changes (one joins, or records its
		// address), or after a while (one restarted with a new build).
		wctx, cancel := context.WithTimeout(ctx, upgradeEvery)
		s.store.Wait(wctx, seen, state.TableServers)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// serversBehind names a voter that does not run a build of this log
// version (or cannot be asked), or "" when none.
func (s *Server) serversBehind(ctx context.Context, snap *state.Snapshot, peers *http.Client, scheme string) (string, error) {
	members, err := s.cluster.Members(snap)
	if err != nil {
		return "", err
	}
	for _, m := range members {
		if !m.Voter || m.ID == s.cluster.ID() {
			continue
		}
		if m.HTTPAddr == "" {
			return m.ID + " (address not recorded)", nil
		}
		v, err := peerLogVersion(ctx, peers, scheme+"://"+m.HTTPAddr)
		if err != nil {
			return fmt.Sprintf("%s (%v)", m.ID, err), nil
		}
		if v < state.LogVersion {
			return fmt.Sprintf("%s (log version %d)", m.ID, v), nil
		}
	}
	return "", nil
}

// peerLogVersion asks a server for the log version of its build; builds
// older than log versions answer none, which is version 1.
func peerLogVersion(ctx context.Context, c *http.Client, base string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/internal/self", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /v1/internal/self: %s", resp.Status)
	}
	var self cluster.SelfInfo
	if err := json.NewDecoder(resp.Body).Decode(&self); err != nil {
		return 0, err
	}
	return max(self.LogVersion, 1), nil
}
