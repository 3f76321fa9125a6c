package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
)

// drover rollout: phased, fleet-wide upgrades of a product's instances.

func init() { extraCommands = append(extraCommands, newRolloutCmd) }

func newRolloutCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "rollout",
		Short: "Upgrade a product's instances across the fleet, in waves",
		Example: `  drover rollout create -f rollout.yaml -dry-run   # the calendar, nothing created
  drover rollout create -f rollout.yaml
  drover rollout status ID -w
  drover rollout approve ID`,
	}, newRolloutCreateCmd(), newRolloutListCmd(), newRolloutStatusCmd(),
		newRolloutControlCmd("pause", "Pause a rollout: upgrades in progress finish, no new one starts"),
		newRolloutControlCmd("resume", "Resume a paused rollout; max_failures counts afresh"),
		newRolloutControlCmd("cancel", "Cancel a rollout: upgrades in progress finish, the rest are skipped"),
		newRolloutControlCmd("approve", "Let the next wave of a rollout with approval manual start"))
}

func newRolloutCreateCmd() *cobra.Command {
	var file string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "create -f FILE [-dry-run]",
		Short: "Start a rollout from a YAML or JSON file",
		Long: `Start a rollout: product, release, selector, waves (each a selector and a
bake time), max_concurrent, max_failures, approval (auto or manual),
staging_first, maintenance_windows and start_at. With -dry-run the servers
answer the calendar (every instance, its wave, state, reason and ETA) and
create nothing.`,
		Example: `  drover rollout create -f rollout.yaml -dry-run
  drover rollout create -f rollout.yaml -o json`,
		Args: argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			if file == "" {
				return usageError{errors.New("rollout create needs -f FILE")}
			}
			var req protocol.RolloutRequest
			if err := readDocFile("rollout", file, c.in, &req); err != nil {
				return usageError{err}
			}
			ro, _, err := c.api.CreateRollout(c.ctx, &req, dryRun)
			if err != nil {
				return err
			}
			return c.show(ro, func(w io.Writer) {
				if dryRun {
					fmt.Fprintf(w, "Dry run: nothing created.\n\n")
				} else {
					fmt.Fprintf(w, "Created rollout %s\n\n", ro.ID)
				}
				rolloutStatus(w, ro, c.now())
			})
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "rollout file (YAML or JSON; - for stdin)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "answer the calendar without creating the rollout")
	return cmd
}

func newRolloutListCmd() *cobra.Command {
	var product, state string
	cmd := &cobra.Command{
		Use:     "list [-product P] [-state S]",
		Short:   "List rollouts",
		Example: `  drover rollout list -product crm -state running`,
		Args:    argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			ros, _, err := c.api.Rollouts(c.ctx, product, state, nil)
			if err != nil {
				return err
			}
			return c.show(ros, func(w io.Writer) {
				t := newTable(w, "ID", "PRODUCT", "RELEASE", "STATE", "WAVE", "DONE/TOTAL", "FAILED", "CREATED")
				for _, ro := range ros {
					done := ro.Counts.Succeeded + ro.Counts.Failed + ro.Counts.RolledBack + ro.Counts.Skipped
					t.row(ro.ID, ro.Product, ro.Release, ro.State, ro.Waves[ro.Wave].Name, ratio(done, ro.Counts.Total),
						itoa(ro.Failures()), stamp(ro.CreatedAt))
				}
				t.flush()
			})
		}),
	}
	cmd.Flags().StringVar(&product, "product", "", "only this product's rollouts")
	cmd.Flags().StringVar(&state, "state", "", "only rollouts in this state")
	return cmd
}

func newRolloutStatusCmd() *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "status ID [-w]",
		Short: "Show a rollout: state, counts, and every instance with its reason and ETA",
		Example: `  drover rollout status 3f2a... 
  drover rollout status 3f2a... -w    # follow until it ends`,
		Args: argsExactly("ID"),
		RunE: verb(func(c *cli, args []string) error {
			ro, meta, err := c.api.Rollout(c.ctx, args[0], nil)
			if err != nil {
				return err
			}
			for watch && !ro.Ended() && ro.State != protocol.RolloutPaused {
				// Progress goes to stderr with -o json, so that stdout holds
				// one document.
				w := c.out
				if c.json {
					w = c.errw
				}
				fmt.Fprintf(w, "%s  %s: %s\n", c.now().Format("15:04:05"), ro.State, rolloutCounts(ro))
				next, m, err := c.api.Rollout(c.ctx, args[0], &client.QueryOptions{Index: meta.Index, Wait: 30 * time.Second})
				if err != nil {
					return err
				}
				ro, meta = next, m
			}
			return c.show(ro, func(w io.Writer) { rolloutStatus(w, ro, c.now()) })
		}),
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollout until it ends or pauses")
	return cmd
}

func newRolloutControlCmd(action, short string) *cobra.Command {
	return &cobra.Command{
		Use:     action + " ID",
		Short:   short,
		Example: "  drover rollout " + action + " 3f2a...",
		Args:    argsExactly("ID"),
		RunE: verb(func(c *cli, args []string) error {
			ro, _, err := c.api.ControlRollout(c.ctx, args[0], action)
			if err != nil {
				return err
			}
			return c.show(ro, func(w io.Writer) { fmt.Fprintf(w, "Rollout %s is %s\n", ro.ID, ro.State) })
		}),
	}
}

func rolloutCounts(ro *protocol.Rollout) string {
	n := ro.Counts
	return fmt.Sprintf("%d total: %d succeeded, %d upgrading, %d pending, %d waiting, %d failed, %d rolled back, %d skipped",
		n.Total, n.Succeeded, n.Upgrading, n.Pending, n.Waiting, n.Failed, n.RolledBack, n.Skipped)
}

// rolloutStatus prints a rollout and its calendar.
func rolloutStatus(w io.Writer, ro *protocol.Rollout, now time.Time) {
	fields(w, "ID", ro.ID, "Product", ro.Product+" -> "+ro.Release, "State", ro.State, "Message", ro.Message,
		"Wave", ro.Waves[ro.Wave].Name+" ("+itoa(ro.Wave+1)+" of "+itoa(len(ro.Waves))+")",
		"Instances", rolloutCounts(ro), "Max concurrent", itoa(ro.MaxConcurrent), "Approval", ro.Approval)
	fmt.Fprintln(w)
	t := newTable(w, "INSTANCE", "WAVE", "FROM", "STATE", "ETA", "REASON")
	for _, in := range ro.Instances {
		eta := ""
		if !in.ETA.IsZero() {
			eta = stamp(in.ETA)
			if in.ETA.After(now) {
				eta += " (in " + in.ETA.Sub(now).Round(time.Second).String() + ")"
			}
		}
		t.row(in.ID, ro.Waves[in.Wave].Name, in.From, in.State, eta, in.Reason)
	}
	t.flush()
}
