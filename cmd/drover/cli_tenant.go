package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
)

func init() { extraCommands = append(extraCommands, newTenantCmd) }

func newTenantCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "tenant",
		Short: "Create, list, show, change and delete tenants",
		Example: `  drover tenant create acme -label tier=gold -quota-instances 10
  drover tenant list
  drover tenant show acme
  drover tenant update acme -quota-memory 16384 -maintenance-window "tue 01:00 4h"
  drover tenant delete acme`,
	}, newTenantCreateCmd(), newTenantListCmd(), newTenantShowCmd(), newTenantUpdateCmd(), newTenantDeleteCmd())
}

func newTenantCreateCmd() *cobra.Command {
	var labels []string
	var q protocol.Quotas
	var region string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a tenant",
		Long:  "Create a tenant, with labels and quotas (0 means unlimited).",
		Example: `  drover tenant create acme
  drover tenant create acme -label tier=gold -label region=eu -quota-instances 10 -quota-memory 8192`,
		Args: argsExactly("NAME"),
		RunE: verb(func(c *cli, args []string) error {
			l, err := parseLabels("label", labels)
			if err != nil {
				return err
			}
			t, _, err := c.api.CreateTenant(c.ctx, &protocol.Tenant{Name: args[0], Labels: l, Quotas: q, Region: region})
			if err != nil {
				return err
			}
			return c.show(t, func(w io.Writer) { fmt.Fprintf(w, "Created tenant %s\n", t.Name) })
		}),
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&labels, "label", nil, "label key=value (repeatable)")
	fs.StringVar(&region, "region", "", "the only region the tenant's replicas may run in (data residency)")
	fs.IntVar(&q.Instances, "quota-instances", 0, "most instances the tenant may have")
	fs.IntVar(&q.Replicas, "quota-replicas", 0, "most replicas across its instances")
	fs.Int64Var(&q.CPUMillis, "quota-cpu", 0, "most CPU across its replicas, in millicores")
	fs.Int64Var(&q.MemoryMB, "quota-memory", 0, "most memory across its replicas, in MB")
	return cmd
}

func newTenantListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the tenants",
		Example: `  drover tenant list -o json`,
		Args:    argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			ts, _, err := c.api.Tenants(c.ctx, nil)
			if err != nil {
				return err
			}
			return c.show(ts, func(w io.Writer) { tenantsTable(w, ts, c.now()) })
		}),
	}
}

func newTenantShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "show NAME",
		Short:             "Show a tenant: state, labels, quotas",
		Example:           `  drover tenant show acme`,
		Args:              argsExactly("NAME"),
		ValidArgsFunction: completeTenants,
		RunE: verb(func(c *cli, args []string) error {
			t, _, err := c.api.Tenant(c.ctx, args[0], nil)
			if err != nil {
				return err
			}
			return c.show(t, func(w io.Writer) {
				window := ""
				if t.MaintenanceWindow != nil {
					window = t.MaintenanceWindow.String() + " UTC"
				}
				fields(w, "Name", t.Name, "State", t.State, "Labels", kvList(t.Labels), "Region", t.Region,
					"Maintenance window", window, "Quotas", quotasText(t.Quotas), "Created", stamp(t.CreatedAt))
			})
		}),
	}
}

func newTenantUpdateCmd() *cobra.Command {
	var (
		labels, removeLabels []string
		q                    protocol.Quotas
		region, window, st   string
		noWindow             bool
	)
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "update NAME [-label k=v] [-remove-label k] [-quota-... N] [-region R] [-maintenance-window W]",
		Short: "Change a tenant's labels, quotas, region, maintenance window or state",
		Long: `Change what the flags name and keep the rest: -label adds or replaces a label,
-remove-label drops one, each -quota-* flag sets that quota (0 means
unlimited). -region "" lets the tenant's instances run in any region.

The maintenance window, when rollouts may upgrade the tenant's instances, is
"DAYS HH:MM DURATION" in UTC: days mon to sun, comma-separated.`,
		Example: `  drover tenant update acme -label tier=platinum -remove-label trial
  drover tenant update acme -quota-instances 20 -quota-memory 16384
  drover tenant update acme -maintenance-window "tue,thu 01:00 4h"
  drover tenant update acme -no-maintenance-window -region eu-west
  drover tenant update acme -state suspended`,
		Args:              argsExactly("NAME"),
		ValidArgsFunction: completeTenants,
		RunE: verb(func(c *cli, args []string) error {
			var p client.TenantPatch
			fs := cmd.Flags()
			add, err := parseLabels("label", labels)
			if err != nil {
				return err
			}
			for _, k := range removeLabels {
				if _, ok := add[k]; ok {
					return usageError{fmt.Errorf("-remove-label %s: the same label is given to -label", k)}
				}
			}
			switch {
			case noWindow && fs.Changed("maintenance-window"):
				return usageError{errors.New("-maintenance-window and -no-maintenance-window: give one")}
			case noWindow:
				p.MaintenanceWindow = &protocol.MaintenanceWindow{} // {} clears it
			case fs.Changed("maintenance-window"):
				if p.MaintenanceWindow, err = parseWindow(window); err != nil {
					return err
				}
			}
			if fs.Changed("region") {
				p.Region = &region
			}
			if fs.Changed("state") {
				p.State = &st
			}
			quotaFlags := []string{"quota-instances", "quota-replicas", "quota-cpu", "quota-memory"}
			quotas := slices.ContainsFunc(quotaFlags, fs.Changed)
			if len(add) == 0 && len(removeLabels) == 0 && !quotas && p == (client.TenantPatch{}) {
				return usageError{errors.New("nothing to change: give -label, -remove-label, a -quota-* flag, -region, -maintenance-window, -no-maintenance-window or -state")}
			}
			// PATCH replaces the labels and the quotas whole: start from
			// the tenant's own.
			if len(add) > 0 || len(removeLabels) > 0 || quotas {
				t, _, err := c.api.Tenant(c.ctx, args[0], nil)
				if err != nil {
					return err
				}
				if len(add) > 0 || len(removeLabels) > 0 {
					l := maps.Clone(t.Labels)
					if l == nil {
						l = map[string]string{}
					}
					maps.Copy(l, add)
					for _, k := range removeLabels {
						delete(l, k)
					}
					p.Labels = &l
				}
				if quotas {
					cur := t.Quotas
					if fs.Changed("quota-instances") {
						cur.Instances = q.Instances
					}
					if fs.Changed("quota-replicas") {
						cur.Replicas = q.Replicas
					}
					if fs.Changed("quota-cpu") {
						cur.CPUMillis = q.CPUMillis
					}
					if fs.Changed("quota-memory") {
						cur.MemoryMB = q.MemoryMB
					}
					p.Quotas = &cur
				}
			}
			t, _, err := c.api.UpdateTenant(c.ctx, args[0], &p)
			if err != nil {
				return err
			}
			return c.show(t, func(w io.Writer) { fmt.Fprintf(w, "Updated tenant %s\n", t.Name) })
		}),
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&labels, "label", nil, "add or replace a label key=value (repeatable)")
	fs.StringArrayVar(&removeLabels, "remove-label", nil, "remove the label of this key (repeatable)")
	fs.IntVar(&q.Instances, "quota-instances", 0, "most instances the tenant may have (0: unlimited)")
	fs.IntVar(&q.Replicas, "quota-replicas", 0, "most replicas across its instances (0: unlimited)")
	fs.Int64Var(&q.CPUMillis, "quota-cpu", 0, "most CPU across its replicas, in millicores (0: unlimited)")
	fs.Int64Var(&q.MemoryMB, "quota-memory", 0, "most memory across its replicas, in MB (0: unlimited)")
	fs.StringVar(&region, "region", "", "the only region the tenant's replicas may run in; \"\" for any")
	fs.StringVar(&window, "maintenance-window", "", `when rollouts may upgrade its instances: "DAYS HH:MM DURATION" in UTC, e.g. "tue,thu 01:00 4h"`)
	fs.BoolVar(&noWindow, "no-maintenance-window", false, "remove the maintenance window: rollouts upgrade at any time")
	fs.StringVar(&st, "state", "", "active, or suspended (its instances cannot be started or created)")
	return cmd
}

// parseWindow reads a maintenance window: "tue,thu 01:00 4h".
func parseWindow(s string) (*protocol.MaintenanceWindow, error) {
	parts := strings.Fields(s)
	bad := func(err error) error {
		msg := fmt.Sprintf(`-maintenance-window %q: want "DAYS HH:MM DURATION" in UTC, e.g. "tue,thu 01:00 4h"`, s)
		if err != nil {
			msg += ": " + err.Error()
		}
		return usageError{errors.New(msg)}
	}
	if len(parts) != 3 {
		return nil, bad(nil)
	}
	d, err := time.ParseDuration(parts[2])
	if err != nil {
		return nil, bad(nil)
	}
	m := &protocol.MaintenanceWindow{Days: strings.Split(strings.ToLower(parts[0]), ","), Start: parts[1], Duration: protocol.Duration(d)}
	if err := m.Validate("maintenance_window"); err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			err = errors.New(pe.Message)
		}
		return nil, bad(err)
	}
	return m, nil
}

func newTenantDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Short:             "Delete a tenant",
		Example:           `  drover tenant delete acme`,
		Args:              argsExactly("NAME"),
		ValidArgsFunction: completeTenants,
		RunE: verb(func(c *cli, args []string) error {
			m, err := c.api.DeleteTenant(c.ctx, args[0])
			if err != nil {
				return err
			}
			return c.show(deleted{ID: args[0], Deleted: true, Index: m.Index}, func(w io.Writer) {
				fmt.Fprintf(w, "Deleted tenant %s\n", args[0])
			})
		}),
	}
}

// deleted is what -o json prints for a deletion, whose answer has no body.
type deleted struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
	Index   uint64 `json:"index,omitempty"`
}
