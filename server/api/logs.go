package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/drover-dev/drover/protocol"
)

// LogStreamer streams a replica's output from its agent (the gateway).
type LogStreamer interface {
	StreamLogs(ctx context.Context, node string, req protocol.LogRequest, w io.Writer, flush func()) error
}

// MaxLogTail bounds ?tail=.
const MaxLogTail = 10000

func (a *API) logs(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r)
	if err != nil {
		return err
	}
	in, err := a.instance(snap, r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	tail := 100
	if s := q.Get("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > MaxLogTail {
			return protocol.FieldError("tail", "must be between 0 and %d", MaxLogTail)
		}
		tail = n
	}
	follow := q.Get("follow") == "true"
	var rep *protocol.Replica
	if id := q.Get("replica"); id != "" {
		rep = snap.Replica(id)
		if rep == nil || rep.Tenant != in.Tenant || rep.Instance != in.Name {
			return protocol.NotFound("replica", id)
		}
	} else {
		// A running replica, else the last that was placed: its output
		// is the instance's last.
		live := false
		for _, c := range snap.Replicas(in.ID) {
			cLive := c.Desired == protocol.DesiredRun && !c.Terminal()
			if c.Node != "" && (rep == nil || cLive || !live && c.CreateIndex > rep.CreateIndex) {
				rep, live = c, live || cLive
			}
		}
		if rep == nil {
			return protocol.Errorf(protocol.CodeNotFound, "instance %s has no replica on a node", in.ID)
		}
	}
	if rep.Node == "" {
		return protocol.Errorf(protocol.CodeNotFound, "replica %s is not placed on a node", rep.ID)
	}
	if a.cfg.Logs == nil {
		return protocol.Errorf(protocol.CodeUnavailable, "log streaming is not available")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Drover-Replica", rep.ID)
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	err = a.cfg.Logs.StreamLogs(r.Context(), rep.Node, protocol.LogRequest{Replica: rep.ID, Tail: tail, Follow: follow}, w, flush)
	if errors.Is(err, protocol.ErrNotFound) && rep.Ended() {
		why := rep.State
		if rep.StopReason != "" {
			why += ": " + rep.StopReason
		}
		return protocol.Errorf(protocol.CodeNotFound, "replica %s ended (%s) and its output is gone from its node", rep.ID, why)
	}
	return err
}
