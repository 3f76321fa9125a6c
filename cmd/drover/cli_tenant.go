package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/protocol"
)

func init() { extraCommands = append(extraCommands, newTenantCmd) }

func newTenantCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "tenant",
		Short: "Create, list, show and delete tenants",
		Example: `  drover tenant create acme -label tier=gold -quota-instances 10
  drover tenant list
  drover tenant show acme
  drover tenant delete acme`,
	}, newTenantCreateCmd(), newTenantListCmd(), newTenantShowCmd(), newTenantDeleteCmd())
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
