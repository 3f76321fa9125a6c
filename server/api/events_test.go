package api_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/state"
)

// collect reads the events a stream without follow answers.
func collect(t *testing.T, c *client.Client, o client.EventsOptions) []*protocol.StreamEvent {
	t.Helper()
	var out []*protocol.StreamEvent
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.EventStream(ctx, o, func(e *protocol.StreamEvent) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("event stream: %v", err)
	}
	return out
}

func newClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Address: url, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Every server streams the same events under the same ids: a reader that
// read part of the stream from one server resumes on another after its
// last id and gets the rest, nothing missed and nothing twice. A reader
// that follows sees a write's events as they are committed.
func TestEventStreamResumesOnAnotherServer(t *testing.T) {
	e := newEnv(t, envConfig{Servers: 3})
	leader := e.c.Leader()
	for _, name := range []string{"acme", "globex", "initech"} {
		must(t, 201, "POST", leader.URL+"/v1/tenants", map[string]any{"name": name}, nil)
	}
	e.c.WaitForReplication()
	all := collect(t, newClient(t, leader.URL, ""), client.EventsOptions{})
	if len(all) < 3 {
		t.Fatalf("%d events for three tenant creates, want their three audit records", len(all))
	}
	follower := e.c.Followers()[0]
	half := all[len(all)/2].ID()
	rest := collect(t, newClient(t, follower.URL, ""), client.EventsOptions{After: &half})
	if got, want := ids(rest), ids(all[len(all)/2+1:]); got != want {
		t.Fatalf("resumed on a follower after %s:\n got %s\nwant %s", half, got, want)
	}

	// Following: the events of a write arrive without asking again.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	last := all[len(all)-1].ID()
	got := make(chan *protocol.StreamEvent, 16)
	done := make(chan error, 1)
	go func() {
		_, err := newClient(t, follower.URL, "").EventStream(ctx, client.EventsOptions{After: &last, Follow: true, Topics: []string{protocol.TopicAudit}},
			func(e *protocol.StreamEvent) error { got <- e; return nil })
		done <- err
	}()
	idx := must(t, 201, "POST", leader.URL+"/v1/tenants", map[string]any{"name": "umbrella"}, nil).index()
	select {
	case ev := <-got:
		if ev.Index != idx || ev.Topic != protocol.TopicAudit || ev.Audit == nil || ev.Audit.Target != "umbrella" {
			t.Fatalf("followed event %+v, want the audit record of the create at index %d", ev, idx)
		}
	case err := <-done:
		t.Fatalf("stream ended: %v", err)
	case <-ctx.Done():
		t.Fatal("no event for the create")
	}
	cancel()
	<-done
}

func ids(evs []*protocol.StreamEvent) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s ", e.ID())
	}
	return b.String()
}

// A tenant token streams its tenant's events only, and another tenant's
// name is a 404 as everywhere else in the API. Bad queries name their field.
func TestEventStreamTenantScope(t *testing.T) {
	e := newACLEnv(t, server.Config{})
	mgmt := e.bootstrap().Secret
	for _, name := range []string{"acme", "globex"} {
		e.ok(mgmt, "POST", "/v1/tenants", map[string]any{"name": name}, nil)
	}
	acme := e.token(mgmt, protocol.TokenRequest{Role: protocol.RoleTenantViewer, Tenant: "acme"}).Secret
	e.ok(mgmt, "PATCH", "/v1/tenants/globex", map[string]any{"labels": map[string]string{"tier": "gold"}}, nil)

	seen := collect(t, newClient(t, e.url, acme), client.EventsOptions{})
	if len(seen) == 0 {
		t.Fatal("acme's token streamed no events; its tenant's creation is one")
	}
	for _, ev := range seen {
		if ev.Tenant != "acme" {
			t.Fatalf("acme's token streamed %+v", ev)
		}
	}
	everyone := collect(t, newClient(t, e.url, mgmt), client.EventsOptions{Topics: []string{protocol.TopicAudit}})
	tenants := map[string]bool{}
	for _, ev := range everyone {
		if ev.Topic != protocol.TopicAudit {
			t.Fatalf("asked for audit events, got %+v", ev)
		}
		tenants[ev.Tenant] = true
	}
	if !tenants["acme"] || !tenants["globex"] {
		t.Fatalf("the management token's audit events cover tenants %v, want acme and globex", tenants)
	}

	for _, c := range []struct {
		token, query string
		header       []string
		status       int
		field        string
	}{
		{acme, "?tenant=globex", nil, 404, ""},
		{mgmt, "?tenant=nobody", nil, 404, ""},
		{mgmt, "?topic=instance,bogus", nil, 400, "topic"},
		{mgmt, "?follow=maybe", nil, 400, "follow"},
		{mgmt, "?instance=web", nil, 400, "instance"},
		{mgmt, "?tenant=acme&instance=Web", nil, 400, "instance"},
		{mgmt, "?index=x", nil, 400, "index"},
		{mgmt, "", []string{"Last-Event-ID", "12.x"}, 400, "Last-Event-ID"},
		{"", "", nil, 401, ""},
	} {
		r := e.call(c.token, "GET", "/v1/events"+c.query, nil, c.header...)
		if r.status != c.status {
			t.Errorf("GET /v1/events%s %v: %d %s, want %d", c.query, c.header, r.status, r.body, c.status)
			continue
		}
		if c.field != "" && !strings.Contains(string(r.body), `"field":"`+c.field+`"`) {
			t.Errorf("GET /v1/events%s %v: %s does not name field %s", c.query, c.header, r.body, c.field)
		}
	}
}

// ?instance=NAME (with the tenant) keeps the events of one instance.
func TestEventStreamOfOneInstance(t *testing.T) {
	e := newEnv(t, envConfig{})
	must(t, 201, "POST", e.url()+"/v1/tenants", map[string]any{"name": "acme"}, nil)
	for _, name := range []string{"web", "web2"} {
		must(t, 201, "POST", e.url()+"/v1/tenants/acme/instances", instanceDoc(name), nil)
	}
	must(t, 200, "POST", e.url()+"/v1/tenants/acme/instances/web/scale", map[string]any{"replicas": 2}, nil)
	evs := collect(t, newClient(t, e.url(), ""), client.EventsOptions{Tenant: "acme", Instance: "web"})
	types := map[string]bool{}
	for _, ev := range evs {
		if ev.Tenant != "acme" || ev.Instance != "web" {
			t.Fatalf("an event of another instance: %+v", ev)
		}
		types[ev.Type] = true
	}
	if !types["created"] || !types["scaled"] {
		t.Fatalf("events of acme/web: %s; want its creation and its scaling", ids(evs))
	}
}

// A reader resuming after an event the servers no longer keep is told so
// in a last event, `lost`, instead of silently missing events.
func TestEventStreamSaysWhenEventsWereLost(t *testing.T) {
	e := newEnv(t, envConfig{})
	must(t, 201, "POST", e.url()+"/v1/tenants", map[string]any{"name": "acme"}, nil)
	first := collect(t, newClient(t, e.url(), ""), client.EventsOptions{})[0].ID()
	records := make([]protocol.AuditRecord, 500)
	for i := range records {
		records[i] = protocol.AuditRecord{Action: "instance.create", Target: "acme/x", Result: "permission_denied"}
	}
	for n := 0; n <= state.MaxFeedEvents; n += len(records) {
		e.c.MustPropose(state.CmdAudit, state.AuditAppend{Records: records})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	_, err := newClient(t, e.url(), "").EventStream(ctx, client.EventsOptions{After: &first, Follow: true},
		func(*protocol.StreamEvent) error { n++; return nil })
	if !errors.Is(err, client.ErrEventsLost) || n != 0 {
		t.Fatalf("resuming after dropped event %s: %d events, then %v; want none, then the lost event", first, n, err)
	}
	// Without a place to resume from, the stream starts at the oldest kept.
	if got := collect(t, newClient(t, e.url(), ""), client.EventsOptions{}); len(got) != state.MaxFeedEvents {
		t.Fatalf("%d events from the start, want the %d kept", len(got), state.MaxFeedEvents)
	}
}
