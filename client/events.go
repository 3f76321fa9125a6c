package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/drover-dev/drover/protocol"
)

// EventsOptions select events of the stream (GET /v1/events).
type EventsOptions struct {
	Topics []string // none: every topic
	Tenant string   // a tenant token's own tenant when empty
	// Instance keeps the events of one instance of Tenant (by name).
	Instance string
	// After resumes after an event (Last-Event-ID); nil starts with the
	// oldest event the server keeps.
	After *protocol.EventID
	// Follow keeps the stream open for new events; without it the stream
	// ends after the events the server has.
	Follow bool
}

// ErrEventsLost is returned when the server no longer keeps the events
// after the one asked for: the reader fell too far behind.
var ErrEventsLost = errors.New("events lost")

// maxEventLine bounds one line of the stream.
const maxEventLine = 1 << 20

// EventStream reads the event stream and calls fn with each event, in order,
// until the stream ends, ctx ends, or fn returns an error. It returns the
// id of the last event fn was given (zero if none), which resumes the
// stream, on this server or another, with no event missed or repeated.
func (c *Client) EventStream(ctx context.Context, o EventsOptions, fn func(*protocol.StreamEvent) error) (protocol.EventID, error) {
	var last protocol.EventID
	if o.After != nil {
		last = *o.After
	}
	v := url.Values{}
	if len(o.Topics) > 0 {
		v.Set("topic", strings.Join(o.Topics, ","))
	}
	if o.Tenant != "" {
		v.Set("tenant", o.Tenant)
	}
	if o.Instance != "" {
		v.Set("instance", o.Instance)
	}
	if !o.Follow {
		v.Set("follow", "false")
	}
	h := http.Header{"Accept": {"text/event-stream"}}
	if o.After != nil {
		h.Set("Last-Event-ID", o.After.String())
	}
	body, _, err := c.Stream(ctx, Request{Method: http.MethodGet, Path: "/v1/events", Query: v, Header: h})
	if err != nil {
		return last, err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	var name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data == "" {
				continue
			}
			if name == "lost" {
				var m struct{ Message string }
				_ = json.Unmarshal([]byte(data), &m)
				return last, fmt.Errorf("%w: %s", ErrEventsLost, m.Message)
			}
			var e protocol.StreamEvent
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				return last, fmt.Errorf("event stream: %w", err)
			}
			if err := fn(&e); err != nil {
				return last, err
			}
			last, name, data = e.ID(), "", ""
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
	if err := sc.Err(); err != nil {
		return last, fmt.Errorf("event stream: %w", err)
	}
	if o.Follow && ctx.Err() == nil {
		return last, fmt.Errorf("event stream: the server ended it")
	}
	return last, ctx.Err()
}
