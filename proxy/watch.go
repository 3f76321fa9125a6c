package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/drover-dev/drover/internal/backoff"
	"github.com/drover-dev/drover/protocol"
	"github.com/hashicorp/go-hclog"
)

// maxTableBytes bounds an answer of GET /v1/routes: 64 MiB holds some
// 200,000 instances with their backends.
const maxTableBytes = 64 << 20

// answerGrace, and an eighth of the wait, is how much longer than its wait
// a server may take to answer a blocking query before the gateway asks
// another.
const answerGrace = 2 * time.Second

// quietFailures is how long the servers may fail to answer before the
// gateway warns of it.
const quietFailures = 3 * time.Second

// watcher keeps the routing table current: a blocking query on GET
// /v1/routes, answered by any server (followers forward it to the leader),
// moving to the next server when one fails. While none answers, the last
// table stays in use.
type watcher struct {
	servers []string
	token   string
	client  *http.Client
	wait    time.Duration
	logger  hclog.Logger
	// set installs a newer table.
	set func(protocol.Routes)
}

func (w *watcher) run(ctx context.Context) {
	if len(w.servers) == 0 {
		w.logger.Error("routing table: no servers to ask")
		return
	}
	var index uint64
	have := false // a table: from then on, every query blocks
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: true}
	next := 0
	var failingSince time.Time
	warned := false
	for ctx.Err() == nil {
		srv := w.servers[next%len(w.servers)]
		rs, err := w.fetch(ctx, srv, index, have)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			next++
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			// A leader election takes a second or two: say nothing of
			// one, and of a lasting failure every 20 tries.
			if time.Since(failingSince) > quietFailures && (!warned || bo.Failures()%20 == 0) {
				w.logger.Warn("routing table: servers do not answer; serving the last table", "server", srv, "since", failingSince.Format(time.RFC3339), "error", err)
				warned = true
			} else {
				w.logger.Debug("routing table: server did not answer", "server", srv, "error", err)
			}
			backoff.Sleep(ctx, bo.Next())
			continue
		}
		if warned {
			w.logger.Info("routing table: servers answer again", "server", srv, "index", rs.Index)
		}
		failingSince, warned = time.Time{}, false
		bo.Reset()
		if rs.Index > index || !have {
			w.set(rs)
			index, have = rs.Index, true
		}
	}
}

// fetch asks one server for the table: past index, blocking up to w.wait,
// when block is set. A server that does not answer within the wait and
// answerGrace is given up on.
func (w *watcher) fetch(ctx context.Context, server string, index uint64, block bool) (protocol.Routes, error) {
	var rs protocol.Routes
	q := url.Values{}
	if block {
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", w.wait.String())
	}
	ctx, cancel := context.WithTimeout(ctx, w.wait+w.wait/8+answerGrace)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/v1/routes?"+q.Encode(), nil)
	if err != nil {
		return rs, err
	}
	if w.token != "" {
		req.Header.Set("Authorization", "Bearer "+w.token)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return rs, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTableBytes+1))
	if err != nil {
		return rs, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error protocol.Error `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return rs, fmt.Errorf("%s: %s", resp.Status, e.Error.Message)
		}
		return rs, fmt.Errorf("%s", resp.Status)
	}
	if len(body) > maxTableBytes {
		return rs, fmt.Errorf("routing table larger than %d bytes", maxTableBytes)
	}
	if err := json.Unmarshal(body, &rs); err != nil {
		return rs, fmt.Errorf("decode routing table: %w", err)
	}
	return rs, nil
}
