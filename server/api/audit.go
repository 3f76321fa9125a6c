package api

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// Audit of attempts that changed nothing. A change that reaches Raft
// carries its own record; one refused before (401, 403, a bad body, a
// plan's limit) is queued here and written in batches, one Raft entry per
// auditFlushEvery at most, so that a flood of refused requests cannot turn
// into a flood of Raft entries. Each source gets at most auditPerSource
// records a batch and the batch at most auditMaxBatch; the rest are counted
// and written as one AuditDropped record per source, so the log still says
// who tried how often, and a flood cannot push older records out of it.
const (
	auditFlushEvery = 250 * time.Millisecond
	auditPerSource  = 20
	auditMaxBatch   = 500
	auditMaxSources = 1000 // sources counted apart in one batch; the rest share one count
)

// AuditDropped is the action of a record that counts refused attempts of
// one source that were not recorded one by one.
const AuditDropped = "audit.dropped"

type auditQueue struct {
	a *API

	mu       sync.Mutex
	pending  []protocol.AuditRecord
	perSrc   map[string]int
	dropped  map[string]int
	running  bool
	closed   bool
	wg       sync.WaitGroup
	stop     chan struct{}
	stopOnce sync.Once
}

func newAuditQueue(a *API) *auditQueue {
	return &auditQueue{a: a, perSrc: map[string]int{}, dropped: map[string]int{}, stop: make(chan struct{})}
}

// add queues the record of an attempt that failed with code. The goroutine
// that writes the queue runs only while there is something to write.
func (q *auditQueue) add(rec *protocol.AuditRecord, code protocol.Code) {
	rec.Result = string(code)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if q.perSrc[rec.Source] < auditPerSource && len(q.pending) < auditMaxBatch {
		q.perSrc[rec.Source]++
		q.pending = append(q.pending, *rec)
	} else {
		src := rec.Source
		if _, ok := q.dropped[src]; !ok && len(q.dropped) >= auditMaxSources {
			src = "(other sources)"
		}
		q.dropped[src]++
	}
	if !q.running {
		q.running = true
		q.wg.Add(1)
		go q.run()
	}
}

func (q *auditQueue) run() {
	defer q.wg.Done()
	for {
		t := time.NewTimer(auditFlushEvery)
		select {
		case <-t.C:
		case <-q.stop:
			t.Stop()
		}
		recs := q.take()
		if len(recs) == 0 {
			return
		}
		q.write(recs)
	}
}

// take empties the queue, or marks the writer stopped when it is empty.
func (q *auditQueue) take() []protocol.AuditRecord {
	q.mu.Lock()
	defer q.mu.Unlock()
	recs := q.pending
	srcs := make([]string, 0, len(q.dropped))
	for src := range q.dropped {
		srcs = append(srcs, src)
	}
	sort.Strings(srcs)
	now := q.a.cfg.Clock().UTC()
	for _, src := range srcs {
		recs = append(recs, protocol.AuditRecord{Time: now, Action: AuditDropped, Source: src, Result: "dropped",
			Target: fmt.Sprintf("%d more refused attempts not recorded one by one", q.dropped[src])})
	}
	q.pending, q.perSrc, q.dropped = nil, map[string]int{}, map[string]int{}
	if len(recs) == 0 {
		q.running = false
	}
	return recs
}

func (q *auditQueue) write(recs []protocol.AuditRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := q.a.c.Propose(ctx, state.CmdAudit, state.AuditAppend{Records: recs}, nil); err != nil {
		// A follower cannot write: it forwards changes, so what it refuses
		// itself are only bad internal calls.
		q.a.logger.Warn("audit records of refused requests not written", "records", len(recs), "error", err)
	}
}

// Close writes what is queued and stops the writer.
func (q *auditQueue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.stopOnce.Do(func() { close(q.stop) })
	q.wg.Wait()
}

// Close writes the audit records still queued. The API serves nothing of
// what it refuses afterwards.
func (a *API) Close() { a.audit.Close() }

// MaxAuditLimit bounds ?limit= of GET /v1/audit.
const MaxAuditLimit = 10000

// listAudit answers GET /v1/audit?tenant=&since=&action=&result=&token=&limit=.
// since is a duration back from now (1h) or an RFC 3339 time. A tenant
// token sees its own tenant's records only.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := state.AuditFilter{Tenant: q.Get("tenant"), Limit: 1000}
	if s := q.Get("since"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d >= 0 {
			f.Since = a.cfg.Clock().Add(-d).UnixNano()
		} else if t, err := time.Parse(time.RFC3339, s); err == nil {
			f.Since = t.UnixNano()
		} else {
			return protocol.FieldError("since", "must be a duration like 1h or an RFC 3339 time")
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxAuditLimit {
			return protocol.FieldError("limit", "must be between 1 and %d", MaxAuditLimit)
		}
		f.Limit = n
	}
	id := identityFrom(r)
	foreign := id.Tenant != "" && f.Tenant != "" && f.Tenant != id.Tenant
	if id.Tenant != "" {
		f.Tenant = id.Tenant
	}
	snap, err := a.read(w, r, state.TableAudit)
	if err != nil {
		return err
	}
	if foreign {
		// Another tenant's records: none, as for a tenant without any.
		writeJSON(w, http.StatusOK, []*protocol.AuditRecord{})
		return nil
	}
	action, result, token := q.Get("action"), q.Get("result"), q.Get("token")
	limit := f.Limit
	f.Limit = 0
	out := []*protocol.AuditRecord{}
	for _, rec := range snap.Audit(f) {
		if action != "" && rec.Action != action || result != "" && rec.Result != result || token != "" && rec.TokenID != token {
			continue
		}
		out = append(out, rec)
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
