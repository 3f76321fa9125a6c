package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
)

func init() { extraCommands = append(extraCommands, newNodeCmd) }

func newNodeCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "node",
		Short: "List nodes, show them, and take them out of service",
		Example: `  drover node list
  drover node status 7c9e6679
  drover node drain 7c9e6679
  drover node eligibility 7c9e6679 off`,
	}, newNodeListCmd(), newNodeStatusCmd(), newNodeDrainCmd(), newNodeEligibilityCmd(), newNodeRevokeCmd())
}

func newNodeListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the nodes",
		Long:  "List the nodes. CPU and MEMORY are free/total, in millicores and MB.",
		Example: `  drover node list
  drover node list -o json | jq -r '.[] | select(.status == "down") | .id'`,
		Args: argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			nodes, _, err := c.api.Nodes(c.ctx, nil)
			if err != nil {
				return err
			}
			if nodes == nil {
				nodes = []*protocol.Node{}
			}
			return c.show(nodes, func(w io.Writer) { nodesTable(w, nodes) })
		}),
	}
}

func newNodeStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "status ID",
		Short:             "Show a node: its facts, resources, and the replicas on it",
		Example:           `  drover node status 7c9e6679`,
		Args:              argsExactly("ID"),
		ValidArgsFunction: completeNodes,
		RunE: verb(func(c *cli, args []string) error {
			id, err := c.nodeID(args[0])
			if err != nil {
				return err
			}
			n, _, err := c.api.Node(c.ctx, id, nil)
			if err != nil {
				return err
			}
			return c.show(n, func(w io.Writer) { nodeStatusTable(w, n, c.now()) })
		}),
	}
}

func nodeStatusTable(w io.Writer, n *client.NodeDetail, now time.Time) {
	r, f := n.Resources, n.Facts
	drain := ""
	if n.Drain != nil {
		drain = "until " + stamp(n.Drain.Deadline)
	}
	limits := yesNo(f.Limits)
	if f.LimitsReason != "" {
		limits += " (" + f.LimitsReason + ")"
	}
	lastSeen := stamp(n.LastSeen)
	if a := age(n.LastSeen, now); a != "" {
		lastSeen += " (" + a + " ago)"
	}
	fields(w, "ID", n.ID, "Name", n.Name, "Region", n.Region, "Labels", kvList(n.Labels),
		"Status", nodeStatus(&n.Node), "Eligible", yesNo(n.Eligible), "Drain", drain, "Last seen", lastSeen,
		"CPU", capacity(r.FreeCPUMillis, r.CPUMillis, "m")+" free",
		"Memory", capacity(r.FreeMemoryMB, r.MemoryMB, "MB")+" free",
		"Disk", capacity(r.FreeDiskMB, r.DiskMB, "MB")+" free",
		"Host", fmt.Sprintf("%s %s %s %s, kernel %s", f.Hostname, f.OS, f.Platform, f.Arch, f.Kernel),
		"Agent", f.AgentVersion, "Cgroups", f.Cgroups, "Limits", limits,
		"Ports", fmt.Sprintf("%d-%d", n.PortRange.Lo, n.PortRange.Hi))
	fmt.Fprintln(w)
	if len(n.Replicas) == 0 {
		fmt.Fprintln(w, "No replicas.")
		return
	}
	t := newTable(w, "ID", "INSTANCE", "STATE", "VERSION", "PORTS", "RESTARTS", "AGE", "MESSAGE")
	for _, rep := range n.Replicas {
		t.row(shortID(rep.ID), protocol.InstanceID(rep.Tenant, rep.Instance), rep.State, utoa(rep.Version),
			portList(rep.Ports), itoa(rep.Restarts), age(rep.StartedAt, now), rep.Message)
	}
	t.flush()
}

func newNodeDrainCmd() *cobra.Command {
	var disable bool
	var deadline time.Duration
	cmd := &cobra.Command{
		Use:   "drain ID [-disable]",
		Short: "Move a node's replicas elsewhere and keep new ones off it",
		Long: `Drain a node: its replicas are moved to other nodes, within -deadline (the
server's default, 1h, when not given), and none is placed on it. -disable
ends the drain.`,
		Example: `  drover node drain 7c9e6679 -deadline 30m
  drover node drain 7c9e6679 -disable`,
		Args:              argsExactly("ID"),
		ValidArgsFunction: completeNodes,
		RunE: verb(func(c *cli, args []string) error {
			if deadline < 0 {
				return usageError{fmt.Errorf("-deadline %s: want a positive duration", deadline)}
			}
			id, err := c.nodeID(args[0])
			if err != nil {
				return err
			}
			n, _, err := c.api.DrainNode(c.ctx, id, !disable, deadline)
			if err != nil {
				return err
			}
			return c.show(n, func(w io.Writer) {
				if disable {
					fmt.Fprintf(w, "Node %s: drain ended (%s)\n", id, n.Status)
					return
				}
				until := ""
				if n.Drain != nil {
					until = " until " + stamp(n.Drain.Deadline)
				}
				fmt.Fprintf(w, "Node %s: draining%s\n", id, until)
			})
		}),
	}
	cmd.Flags().BoolVar(&disable, "disable", false, "end the node's drain")
	cmd.Flags().DurationVar(&deadline, "deadline", 0, "time the drain may take before the remaining replicas are stopped")
	return cmd
}

func newNodeEligibilityCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "eligibility ID on|off",
		Short: "Let the scheduler place new replicas on a node (on), or not (off)",
		Long:  "Set whether new replicas may be placed on a node; replicas already there stay.",
		Example: `  drover node eligibility 7c9e6679 off
  drover node eligibility 7c9e6679 on`,
		Args:              argsExactly("ID", "on|off"),
		ValidArgsFunction: completeNodes,
		RunE: verb(func(c *cli, args []string) error {
			on, err := parseOnOff(args[1])
			if err != nil {
				return err
			}
			id, err := c.nodeID(args[0])
			if err != nil {
				return err
			}
			n, _, err := c.api.SetNodeEligibility(c.ctx, id, on)
			if err != nil {
				return err
			}
			return c.show(n, func(w io.Writer) {
				fmt.Fprintf(w, "Node %s: eligible %s\n", id, yesNo(on))
			})
		}),
	}
}

func newNodeRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a node's identity: its agent can no longer connect",
		Long: `Revoke a node's identity, for a host that is lost or compromised: its agent
is disconnected and refused from then on, and its replicas are placed elsewhere.`,
		Example:           `  drover node revoke 7c9e6679`,
		Args:              argsExactly("ID"),
		ValidArgsFunction: completeNodes,
		RunE: verb(func(c *cli, args []string) error {
			id, err := c.nodeID(args[0])
			if err != nil {
				return err
			}
			n, m, err := c.api.RevokeNode(c.ctx, id)
			if err != nil {
				return err
			}
			var doc any = n
			if n == nil {
				doc = map[string]any{"id": id, "revoked": true, "index": m.Index}
			}
			return c.show(doc, func(w io.Writer) { fmt.Fprintf(w, "Node %s revoked\n", id) })
		}),
	}
}

// nodeID resolves what the user typed for a node, as nomad does: a whole
// id, a unique prefix of one, or a node's name.
func (c *cli) nodeID(typed string) (string, error) {
	nodes, _, err := c.api.Nodes(c.ctx, nil)
	if err != nil {
		return "", err
	}
	var byPrefix, byName []string
	for _, n := range nodes {
		switch {
		case n.ID == typed:
			return n.ID, nil
		case strings.HasPrefix(n.ID, typed):
			byPrefix = append(byPrefix, n.ID)
		}
		if n.Name == typed {
			byName = append(byName, n.ID)
		}
	}
	for _, found := range [][]string{byName, byPrefix} {
		switch len(found) {
		case 0:
			continue
		case 1:
			return found[0], nil
		default:
			return "", requestError{fmt.Sprintf("%q names %d nodes: %s; give more of the id", typed, len(found), strings.Join(found, ", "))}
		}
	}
	return "", requestError{fmt.Sprintf("node %q not found: no node has that id, id prefix or name (drover node list shows them)", typed)}
}
