package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
)

func init() { extraCommands = append(extraCommands, newEventsCmd) }

func newEventsCmd() *cobra.Command {
	var (
		follow   bool
		topics   []string
		tenant   string
		instance string
		index    string
	)
	cmd := &cobra.Command{
		Use:   "events [-f] [-topic T] [-tenant T [-instance NAME]] [-index ID]",
		Short: "Print the cluster's events: instances, deployments, rollouts, nodes, flags, audit",
		Long: `Print the events the cluster keeps, oldest first, one per line: ID, time,
topic, type, subject and message. With -f, keep printing new events as they
happen. -index resumes after an event id (the first column). With -o json,
each event is one JSON object per line.

Topics: ` + strings.Join(protocol.Topics, ", ") + `. Tenant tokens see their tenant's events only.`,
		Example: `  drover events -f -topic instance
  drover events -topic deployment,rollout -tenant acme
  drover events -f -index 1234 -o json`,
		Args: argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			o := client.EventsOptions{Topics: topics, Tenant: tenant, Instance: instance, Follow: follow}
			for _, t := range topics {
				if !slices.Contains(protocol.Topics, t) {
					return usageError{fmt.Errorf("-topic %q: want one of %s", t, strings.Join(protocol.Topics, ", "))}
				}
			}
			if index != "" {
				id, err := protocol.ParseEventID(index)
				if err != nil {
					return usageError{fmt.Errorf("-index: %v", err)}
				}
				o.After = &id
			}
			last, err := c.api.EventStream(c.ctx, o, c.printEvent)
			return c.streamEnded(last, err, "drover events -index %s")
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	cmd.Flags().StringSliceVar(&topics, "topic", nil, "only these topics (comma-separated)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's events")
	cmd.Flags().StringVar(&instance, "instance", "", "only the events of this instance of -tenant (its name)")
	cmd.Flags().StringVar(&index, "index", "", "resume after this event id")
	return cmd
}

// printEvent prints an event of the stream: one line of text, or with
// -o json one JSON object per line.
func (c *cli) printEvent(e *protocol.StreamEvent) error {
	if c.json {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.out, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(c.out, eventLine(e))
	return err
}

// streamEnded words the end of an event stream: an interrupt is no error,
// and a broken stream says how to resume after the last event printed
// (resume is the command, with %s for its id).
func (c *cli) streamEnded(last protocol.EventID, err error, resume string) error {
	switch {
	case err == nil, c.ctx.Err() != nil:
		return nil
	case errors.Is(err, client.ErrEventsLost):
		return err
	case last != (protocol.EventID{}):
		return fmt.Errorf("%w (resume with "+resume+")", err, last)
	}
	return err
}

// eventLine is an event as one line of text.
func eventLine(e *protocol.StreamEvent) string {
	subject := shortID(e.Node)
	switch {
	case e.Instance != "":
		subject = protocol.InstanceID(e.Tenant, e.Instance)
	case e.Rollout != "":
		subject = "rollout " + e.Rollout
	case e.Key != "":
		subject = "flag " + e.Key
	case e.Audit != nil:
		subject = e.Audit.Target
	}
	msg := e.Message
	if a := e.Audit; a != nil {
		msg = a.Result
		if a.Detail != "" {
			msg = a.Detail + " " + msg
		}
		if a.Role != "" {
			msg += " by " + a.Role
			if a.TokenID != "" {
				msg += " " + shortID(a.TokenID)
			}
		}
	}
	if e.Replica != "" {
		subject += " " + shortID(e.Replica)
	}
	return fmt.Sprintf("%-9s %s  %-10s %-18s %-24s %s", e.ID(), stamp(e.Time), e.Topic, e.Type, subject, msg)
}
