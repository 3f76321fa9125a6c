package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/protocol"
)

func init() { extraCommands = append(extraCommands, newStatusCmd) }

func newStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: leader, servers and object counts",
		Example: `  drover status
  drover status -addr http://10.0.0.1:4700 -o json`,
		Args: argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			st, _, err := c.api.Status(c.ctx, nil)
			if err != nil {
				return err
			}
			return c.show(st, func(w io.Writer) { statusTable(w, st) })
		}),
	}
}

func statusTable(w io.Writer, st *protocol.ClusterStatus) {
	leader := st.Leader
	if leader == "" {
		leader = "(none)"
	}
	fields(w, "Leader", leader, "Index", utoa(st.Index),
		"Counts", strings.Join([]string{count(st.Counts.Tenants, "tenant"), count(st.Counts.Instances, "instance"),
			count(st.Counts.Replicas, "replica"), count(st.Counts.Nodes, "node")}, ", "))
	fmt.Fprintln(w)
	membersTable(w, st.Members)
}
