package main

// The instance verbs over its past: events, versions and rollbacks.

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
)

// instanceTopics are the topics of the events that name an instance.
var instanceTopics = []string{protocol.TopicInstance, protocol.TopicDeployment, protocol.TopicRollout}

func newInstanceEventsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "events TENANT/NAME [-f]",
		Short: "Print an instance's recent events, and follow new ones with -f",
		Long: `Print the recent events of an instance, oldest first: its changes, its
replicas' placements and states, its deployments and rollouts.

With -f, print the last ` + itoa(statusEvents) + ` events the cluster's event stream holds
for the instance, then each new one as it happens, one per line (with -o json
one JSON object per line, as drover events prints them), until interrupted.`,
		Example: `  drover instance events acme/crm
  drover instance events acme/crm -f
  drover instance events acme/crm -o json | jq -r '.[] | select(.type == "replica-failed") | .message'`,
		Args:              argsExactly("TENANT/NAME"),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(c *cli, tenant, name string) error {
			if !follow {
				evs, _, err := c.api.Events(c.ctx, tenant, name, nil)
				if err != nil {
					return err
				}
				if evs == nil {
					evs = []*protocol.Event{}
				}
				return c.show(evs, func(w io.Writer) { eventsTable(w, evs) })
			}
			if _, _, err := c.api.Instance(c.ctx, tenant, name, nil); err != nil {
				return err // a name that does not exist would wait for nothing
			}
			// What the stream holds now, of which the last few are shown;
			// then the stream resumes after the last one held.
			o := client.EventsOptions{Topics: instanceTopics, Tenant: tenant, Instance: name}
			var recent []*protocol.StreamEvent
			last, err := c.api.EventStream(c.ctx, o, func(e *protocol.StreamEvent) error {
				if recent = append(recent, e); len(recent) > statusEvents {
					recent = recent[1:]
				}
				return nil
			})
			if err != nil {
				return c.streamEnded(last, err, "drover events -f -tenant "+tenant+" -instance "+name+" -index %s")
			}
			for _, e := range recent {
				if err := c.printEvent(e); err != nil {
					return err
				}
			}
			o.Follow = true
			if last != (protocol.EventID{}) {
				o.After = &last
			}
			last, err = c.api.EventStream(c.ctx, o, c.printEvent)
			return c.streamEnded(last, err, "drover events -f -tenant "+tenant+" -instance "+name+" -index %s")
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	return cmd
}

func newInstanceHistoryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history TENANT/NAME",
		Short: "List an instance's versions: when each was made, its release, which is current and stable",
		Long: `List the versions of an instance's spec the servers keep, oldest first: the
newest ` + itoa(maxVersionsKept) + `, the last stable one (the last that was fully healthy, where an
automatic rollback goes) and those replicas still run. Each shows its spec's
version label or its product release, and when it was made.
drover instance rollback makes one of them current again.`,
		Example: `  drover instance history acme/crm
  drover instance history acme/crm -o json | jq '.[] | select(.stable)'`,
		Args:              argsExactly("TENANT/NAME"),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(c *cli, tenant, name string) error {
			vs, _, err := c.api.InstanceVersions(c.ctx, tenant, name, nil)
			if err != nil {
				return err
			}
			return c.show(vs, func(w io.Writer) {
				t := newTable(w, "VERSION", "RELEASE", "CREATED", "AGE", "")
				for _, v := range vs {
					release := v.Spec.Version
					if v.Product != "" {
						release = v.Product + " " + v.Release
						if v.Channel != "" {
							release += " (channel " + v.Channel + ")"
						}
					}
					var marks []string
					if v.Current {
						marks = append(marks, "current")
					}
					if v.Stable {
						marks = append(marks, "stable")
					}
					t.row(utoa(v.Version), release, stamp(v.CreatedAt), age(v.CreatedAt, c.now()), strings.Join(marks, ", "))
				}
				t.flush()
			})
		}),
	}
}

// maxVersionsKept is the servers' state.MaxVersionsKept, as help says it
// (the CLI does not import the servers' packages).
const maxVersionsKept = 20

func newInstanceRollbackCmd() *cobra.Command {
	var to uint64
	var f lifecycleWait
	cmd := &cobra.Command{
		Use:   "rollback TENANT/NAME [-to VERSION] [-wait]",
		Short: "Give an instance the spec and release of an earlier version again",
		Long: `Make a new version of an instance whose spec (and product release) is that of
an earlier version, which drover instance history lists. It is rolled out
like any update, by a deployment with the instance's update strategy.

Without -to, the instance goes back to its last stable version, or when it
runs that one, to the version before it. With -wait, show the replicas'
progress and return once the new version's replicas are healthy.`,
		Example: `  drover instance rollback acme/crm
  drover instance rollback acme/crm -to 3 -wait`,
		Args:              argsExactly("TENANT/NAME"),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(c *cli, tenant, name string) error {
			if err := f.check(); err != nil {
				return err
			}
			in, _, err := c.api.RollbackInstance(c.ctx, tenant, name, to)
			if err != nil {
				return err
			}
			return c.lifecycleDone(in, &f, fmt.Sprintf("Rolling back %s: version %s (%s)", in.ID, instanceVersion(in), instanceState(in)))
		}),
	}
	cmd.Flags().Uint64Var(&to, "to", 0, "the version to go back to (default: the last stable one)")
	f.add(cmd, "the new version's replicas are healthy")
	return cmd
}
