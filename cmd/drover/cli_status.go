package main

import (
	"fmt"
	"io"

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
		"Counts", fmt.Sprintf("%d tenants, %d instances, %d replicas, %d nodes",
			st.Counts.Tenants, st.Counts.Instances, st.Counts.Replicas, st.Counts.Nodes))
	fmt.Fprintln(w)
	membersTable(w, st.Members)
}
