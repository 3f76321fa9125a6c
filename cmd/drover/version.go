package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/buildinfo"
	"github.com/drover-dev/drover/protocol"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and protocol version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "drover %s (commit %s, protocol %d)\n", buildinfo.Version, buildinfo.Commit, protocol.AgentProtocolVersion)
			return nil
		},
	}
}
