package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server/state"
)

// The event stream, GET /v1/events (API.md, "Events and metrics"), as
// server-sent events. Every server answers from its own state, which holds
// the same events under the same ids as every other server's (they are
// written by the state machine): a client that loses its server resumes
// on another with Last-Event-ID and misses nothing, repeats nothing. A
// server behind the others only answers later.
//
// A subscriber costs its connection and a cursor: events are read from the
// state in pages, never queued per subscriber. One that reads too slowly
// is cut off by the write deadline; one whose cursor falls out of the
// events every server keeps (state.MaxFeedEvents) gets a last event,
// `lost`, and the stream ends.
const (
	// MaxEventStreams bounds the streams one server serves at once.
	MaxEventStreams = 1000
	// eventsPage is how many events are read from the state at a time.
	eventsPage = 512
	// eventsKeepAlive is how often an idle stream gets a comment line, so
	// that proxies keep it open and a vanished client is noticed.
	eventsKeepAlive = 15 * time.Second
	// eventsWriteTimeout bounds each write to a subscriber.
	eventsWriteTimeout = 30 * time.Second
)

// eventsQuery is what GET /v1/events asks for.
type eventsQuery struct {
	topics []string // nil: every topic
	tenant string   // "": every tenant (operators only)
	// instance is the name of one of tenant's instances: only its events.
	instance string
	after    protocol.EventID
	resume   bool // after was given: events before the stream's oldest are lost
	follow   bool
}

func (a *API) parseEventsQuery(r *http.Request) (eventsQuery, error) {
	q := r.URL.Query()
	eq := eventsQuery{follow: true}
	if s := q.Get("topic"); s != "" {
		for _, t := range strings.Split(s, ",") {
			if !slices.Contains(protocol.Topics, t) {
				return eq, protocol.FieldError("topic", "unknown topic %q (topics: %s)", t, strings.Join(protocol.Topics, ", "))
			}
			eq.topics = append(eq.topics, t)
		}
	}
	eq.tenant = q.Get("tenant")
	if own := identityFrom(r).Tenant; own != "" {
		if eq.tenant != "" && eq.tenant != own {
			return eq, protocol.NotFound("tenant", eq.tenant)
		}
		eq.tenant = own
	}
	if eq.tenant != "" && a.store.Snapshot().Tenant(eq.tenant) == nil {
		return eq, protocol.NotFound("tenant", eq.tenant)
	}
	if eq.instance = q.Get("instance"); eq.instance != "" {
		if eq.tenant == "" {
			return eq, protocol.FieldError("instance", "names an instance of a tenant: give tenant too")
		}
		// The instance need not exist (yet, or still): its events are
		// those that name it.
		if err := protocol.ValidateName("instance", eq.instance); err != nil {
			return eq, err
		}
	}
	from, field := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if from == "" {
		from, field = q.Get("index"), "index"
	}
	if from != "" {
		id, err := protocol.ParseEventID(from)
		if err != nil {
			return eq, protocol.FieldError(field, "%v", err)
		}
		eq.after, eq.resume = id, true
	}
	switch q.Get("follow") {
	case "", "true":
	case "false":
		eq.follow = false
	default:
		return eq, protocol.FieldError("follow", "must be true or false")
	}
	return eq, nil
}

func (eq *eventsQuery) wants(e *protocol.StreamEvent) bool {
	return (eq.tenant == "" || e.Tenant == eq.tenant) && (eq.instance == "" || e.Instance == eq.instance) &&
		(eq.topics == nil || slices.Contains(eq.topics, e.Topic))
}

func (a *API) streamEvents(w http.ResponseWriter, r *http.Request) error {
	eq, err := a.parseEventsQuery(r)
	if err != nil {
		return err
	}
	if a.streams.Add(1) > MaxEventStreams {
		a.streams.Add(-1)
		return protocol.Errorf(protocol.CodeUnavailable, "this server serves %d event streams already; retry later or on another server", MaxEventStreams)
	}
	defer a.streams.Add(-1)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &eventWriter{w: w, rc: http.NewResponseController(w)}
	if err := s.flush(); err != nil {
		return nil
	}
	for {
		snap := a.store.Snapshot()
		if dropped := snap.FeedDropped(); eq.resume && eq.after.Before(dropped) {
			s.event("", "lost", map[string]string{
				"message": fmt.Sprintf("events after %s are no longer kept (the oldest kept comes after %s): read the state again and resume from its X-Drover-Index", eq.after, dropped),
			})
			_ = s.flush()
			return nil
		}
		eq.resume = true
		page := snap.FeedAfter(eq.after, eventsPage)
		for _, e := range page {
			eq.after = e.ID()
			if eq.wants(e) {
				s.event(e.ID().String(), e.Topic, e)
			}
		}
		if s.err != nil || s.flush() != nil {
			return nil // the client is gone or too slow
		}
		if len(page) == eventsPage {
			continue
		}
		if !eq.follow {
			return nil
		}
		idx := snap.Index(state.TableFeed)
		ctx, cancel := context.WithTimeout(r.Context(), eventsKeepAlive)
		next := a.store.Wait(ctx, idx, state.TableFeed)
		cancel()
		if r.Context().Err() != nil {
			return nil
		}
		if next <= idx {
			s.comment("keep-alive")
		}
	}
}

// eventWriter writes server-sent events, each under a write deadline; the
// first failed write ends the stream.
type eventWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

func (s *eventWriter) write(b []byte) {
	if s.err != nil {
		return
	}
	// A writer that cannot take deadlines (a test recorder) writes without.
	_ = s.rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout))
	_, s.err = s.w.Write(b)
}

func (s *eventWriter) event(id, name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		s.err = err
		return
	}
	var b []byte
	if id != "" {
		b = append(b, "id: "+id+"\n"...)
	}
	b = append(b, "event: "+name+"\ndata: "...)
	b = append(append(b, data...), "\n\n"...)
	s.write(b)
}

func (s *eventWriter) comment(text string) { s.write([]byte(": " + text + "\n\n")) }

func (s *eventWriter) flush() error {
	if s.err == nil {
		s.err = s.rc.Flush()
	}
	return s.err
}
