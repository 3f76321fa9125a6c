package main

import (
	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/demoapp"
)

func init() { extraCommands = append(extraCommands, newDemoAppCmd) }

// newDemoAppCmd runs the demo workload bundled in the binary: the dev
// mode's demo instance and the tests' workload.
func newDemoAppCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "demo-app",
		Short:              "Run the bundled demo HTTP app (a workload for trying Drover)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := demoapp.Main(args); code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
}
