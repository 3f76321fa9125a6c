package main

// Environments and plans: what operators define once for every tenant.

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/protocol"
)

func init() { extraCommands = append(extraCommands, newEnvironmentCmd, newPlanCmd) }

func newEnvironmentCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:     "environment",
		Aliases: []string{"env"},
		Short:   "List and set environments: their protection and placement constraints",
		Long: `Environments group instances (default, dev, staging, production exist in every
cluster). An environment's constraints apply to every instance in it; a
protected environment's instances are stopped or deleted only with -confirm.`,
		Example: `  drover environment list
  drover environment set production -protected -region eu-west -constraint tier=gold`,
	}, newEnvironmentListCmd(), newEnvironmentSetCmd())
}

func newEnvironmentListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the environments",
		Example: `  drover environment list -o json`,
		Args:    argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			envs, _, err := c.api.Environments(c.ctx, nil)
			if err != nil {
				return err
			}
			return c.show(envs, func(w io.Writer) {
				t := newTable(w, "NAME", "PROTECTED", "REGION", "CONSTRAINTS")
				for _, e := range envs {
					t.row(e.Name, yesNo(e.Protected), e.Constraints.Region, kvList(e.Constraints.Labels))
				}
				t.flush()
			})
		}),
	}
}

func newEnvironmentSetCmd() *cobra.Command {
	var (
		protected bool
		region    string
		labels    []string
		clear     bool
	)
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "set NAME [-protected] [-region R] [-constraint k=v]",
		Short: "Create an environment or change what the flags name",
		Long: `Create an environment, or change an existing one's settings that the flags
name and keep the others. -constraint replaces the node labels the
environment's replicas need; -clear-constraints removes them and the region.
-protected=false lifts the protection.`,
		Example: `  drover environment set staging -constraint pool=staging
  drover environment set production -protected -region eu-west
  drover environment set demo -protected=false -clear-constraints`,
		Args: argsExactly("NAME"),
		RunE: verb(func(c *cli, args []string) error {
			fs := cmd.Flags()
			l, err := parseLabels("constraint", labels)
			if err != nil {
				return err
			}
			if clear && (fs.Changed("constraint") || fs.Changed("region")) {
				return usageError{fmt.Errorf("-clear-constraints with -constraint or -region: give one")}
			}
			envs, _, err := c.api.Environments(c.ctx, nil)
			if err != nil {
				return err
			}
			e := &protocol.Environment{Name: args[0]}
			for _, cur := range envs {
				if cur.Name == args[0] {
					e = cur
				}
			}
			if fs.Changed("protected") {
				e.Protected = protected
			}
			if fs.Changed("region") {
				e.Constraints.Region = region
			}
			if fs.Changed("constraint") {
				e.Constraints.Labels = l
			}
			if clear {
				e.Constraints = protocol.Constraints{}
			}
			out, _, err := c.api.PutEnvironment(c.ctx, e)
			if err != nil {
				return err
			}
			return c.show(out, func(w io.Writer) {
				fmt.Fprintf(w, "Set environment %s: protected %s, constraints %s\n", out.Name, yesNo(out.Protected), constraintsText(out.Constraints))
			})
		}),
	}
	fs := cmd.Flags()
	fs.BoolVar(&protected, "protected", false, "stopping or deleting its instances needs -confirm (-protected=false lifts it)")
	fs.StringVar(&region, "region", "", "region its replicas must run in")
	fs.StringArrayVar(&labels, "constraint", nil, "node label key=value its replicas need (repeatable; replaces the environment's)")
	fs.BoolVar(&clear, "clear-constraints", false, "remove the environment's region and label constraints")
	return cmd
}

// constraintsText is "region eu-west, labels tier=gold", or "none".
func constraintsText(c protocol.Constraints) string {
	var parts []string
	if c.Region != "" {
		parts = append(parts, "region "+c.Region)
	}
	if l := kvList(c.Labels); l != "" {
		parts = append(parts, "labels "+l)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func newPlanCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "plan",
		Short: "List and set plans: the resources and replicas an instance of each may have",
		Long: `A plan fills the CPU and memory an instance's spec leaves out, and bounds what
it may ask for and its replicas (0: no bound). Products list the plans
their instances may choose.`,
		Example: `  drover plan list
  drover plan set pro -cpu 500 -memory 256 -max-replicas 3`,
	}, newPlanListCmd(), newPlanSetCmd())
}

func newPlanListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the plans",
		Example: `  drover plan list -o yaml`,
		Args:    argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			plans, _, err := c.api.Plans(c.ctx, nil)
			if err != nil {
				return err
			}
			return c.show(plans, func(w io.Writer) {
				t := newTable(w, "NAME", "CPU", "MEMORY", "MAX REPLICAS")
				for _, p := range plans {
					t.row(p.Name, limit(p.Resources.CPUMillis, "m"), limit(p.Resources.MemoryMB, "MB"), limit(int64(p.MaxReplicas), ""))
				}
				t.flush()
			})
		}),
	}
}

// limit is a plan's bound as a table shows it: "500m", or "-" for none.
func limit(n int64, unit string) string {
	if n == 0 {
		return ""
	}
	return i64toa(n) + unit
}

func newPlanSetCmd() *cobra.Command {
	var p protocol.Plan
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "set NAME [-cpu M] [-memory MB] [-max-replicas N]",
		Short: "Create a plan or change what the flags name",
		Long: `Create a plan, or change an existing one's values that the flags name and keep
the others. 0 removes a bound.`,
		Example: `  drover plan set starter -cpu 250 -memory 128 -max-replicas 1
  drover plan set pro -max-replicas 5`,
		Args: argsExactly("NAME"),
		RunE: verb(func(c *cli, args []string) error {
			fs := cmd.Flags()
			for f, n := range map[string]int64{"cpu": p.Resources.CPUMillis, "memory": p.Resources.MemoryMB, "max-replicas": int64(p.MaxReplicas)} {
				if n < 0 {
					return usageError{fmt.Errorf("-%s %d: want 0 or more", f, n)}
				}
			}
			plans, _, err := c.api.Plans(c.ctx, nil)
			if err != nil {
				return err
			}
			pl := &protocol.Plan{Name: args[0]}
			for _, cur := range plans {
				if cur.Name == args[0] {
					pl = cur
				}
			}
			if fs.Changed("cpu") {
				pl.Resources.CPUMillis = p.Resources.CPUMillis
			}
			if fs.Changed("memory") {
				pl.Resources.MemoryMB = p.Resources.MemoryMB
			}
			if fs.Changed("max-replicas") {
				pl.MaxReplicas = p.MaxReplicas
			}
			out, _, err := c.api.PutPlan(c.ctx, pl)
			if err != nil {
				return err
			}
			return c.show(out, func(w io.Writer) {
				fmt.Fprintf(w, "Set plan %s: cpu %s, memory %s, max replicas %s\n", out.Name,
					orNone(limit(out.Resources.CPUMillis, "m")), orNone(limit(out.Resources.MemoryMB, "MB")), orNone(limit(int64(out.MaxReplicas), "")))
			})
		}),
	}
	fs := cmd.Flags()
	fs.Int64Var(&p.Resources.CPUMillis, "cpu", 0, "CPU of each replica, in millicores: the default and the most a spec may ask")
	fs.Int64Var(&p.Resources.MemoryMB, "memory", 0, "memory of each replica, in MB: the default and the most a spec may ask")
	fs.IntVar(&p.MaxReplicas, "max-replicas", 0, "most replicas an instance of the plan may have")
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
