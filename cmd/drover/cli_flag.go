package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/protocol"
)

// drover flag: products' feature flags, their overrides and the values an
// instance's replicas read.

func init() { extraCommands = append(extraCommands, newFlagCmd) }

func newFlagCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "flag",
		Short: "Define products' feature flags, override them, read an instance's values",
		Long: `Feature flags are defined per product (define, delete, list PRODUCT) and
overridden per environment, tenant or instance (set, unset); an instance's
value comes from its own override, else its tenant's, else its
environment's, else the flag's default (get). Tenant tokens change only
flags marked tenant_editable. Replicas read their values over OFREP at
DROVER_FLAGS_URL, or from the flagd file at DROVER_FLAGS_FILE.`,
		Example: `  drover flag define crm new-ui -type boolean -variant on=true -variant off=false -default off -tenant-editable
  drover flag set new-ui on -tenant acme
  drover flag set new-ui off -instance acme/web
  drover flag get acme/web
  drover flag list crm`,
	}, newFlagDefineCmd(), newFlagDeleteCmd(), newFlagListCmd(), newFlagGetCmd(), newFlagSetCmd(true), newFlagSetCmd(false))
}

func newFlagDefineCmd() *cobra.Command {
	var f protocol.Flag
	var variants []string
	cmd := &cobra.Command{
		Use:   "define PRODUCT KEY -type T -variant NAME=VALUE... -default NAME",
		Short: "Create or replace a product's flag",
		Long: `Create or replace a product's flag: its type (boolean, string, number or
object), its variants (NAME=VALUE, the value as JSON; a string variant may
leave out the quotes), the default variant, and whether tenants may
override it (-tenant-editable).`,
		Example: `  drover flag define crm new-ui -type boolean -variant on=true -variant off=false -default off -tenant-editable
  drover flag define crm theme -type string -variant light=light -variant dark=dark -default light
  drover flag define crm limits -type object -variant std='{"seats":10}' -default std`,
		Args: argsExactly("PRODUCT", "KEY"),
		RunE: verb(func(c *cli, args []string) error {
			f.Product, f.Key = args[0], args[1]
			if f.Type == "" || f.DefaultVariant == "" || len(variants) == 0 {
				return usageError{errors.New("flag define needs -type, at least one -variant NAME=VALUE and -default NAME")}
			}
			var err error
			if f.Variants, err = parseVariants(f.Type, variants); err != nil {
				return err
			}
			got, _, err := c.api.PutFlag(c.ctx, &f)
			if err != nil {
				return err
			}
			return c.show(got, func(w io.Writer) { fmt.Fprintf(w, "Defined flag %s of %s\n", got.Key, got.Product) })
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&f.Type, "type", "", "boolean, string, number or object")
	fs.StringArrayVar(&variants, "variant", nil, "a variant NAME=VALUE, the value as JSON (repeatable)")
	fs.StringVar(&f.DefaultVariant, "default", "", "the variant of instances that no override names")
	fs.BoolVar(&f.TenantEditable, "tenant-editable", false, "let tenant-admin tokens override it for their tenant and instances")
	fs.StringVar(&f.Description, "description", "", "what the flag turns on")
	return cmd
}

// parseVariants reads NAME=VALUE pairs; a value that is not JSON is a
// string for a flag of type string.
func parseVariants(typ string, pairs []string) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(pairs))
	for _, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return nil, usageError{fmt.Errorf("-variant %q: want NAME=VALUE", p)}
		}
		if !json.Valid([]byte(value)) {
			if typ != protocol.FlagString {
				return nil, usageError{fmt.Errorf("-variant %s: %q is not a JSON %s", name, value, typ)}
			}
			b, _ := json.Marshal(value)
			value = string(b)
		}
		out[name] = json.RawMessage(value)
	}
	return out, nil
}

func newFlagDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete PRODUCT KEY",
		Short:   "Delete a product's flag (the last definition of a key takes its overrides along)",
		Example: `  drover flag delete crm new-ui`,
		Args:    argsExactly("PRODUCT", "KEY"),
		RunE: verb(func(c *cli, args []string) error {
			m, err := c.api.DeleteFlag(c.ctx, args[0], args[1])
			if err != nil {
				return err
			}
			return c.show(deleted{ID: args[0] + "/" + args[1], Deleted: true, Index: m.Index}, func(w io.Writer) {
				fmt.Fprintf(w, "Deleted flag %s of %s\n", args[1], args[0])
			})
		}),
	}
}

// overrideTarget is the -instance, -tenant or -env of a verb: exactly one.
type overrideTarget struct{ instance, tenant, env string }

func (o *overrideTarget) flags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&o.instance, "instance", "", "an instance, TENANT/NAME")
	fs.StringVar(&o.tenant, "tenant", "", "a tenant: all its instances")
	fs.StringVar(&o.env, "env", "", "an environment: all its instances (operators only)")
}

// scope returns the scope and target named, or a usage error.
func (o *overrideTarget) scope(verbName string, allowInstance bool) (string, string, error) {
	var scopes, targets []string
	for _, st := range [][2]string{{protocol.FlagScopeInstance, o.instance}, {protocol.FlagScopeTenant, o.tenant}, {protocol.FlagScopeEnvironment, o.env}} {
		if st[1] != "" {
			scopes, targets = append(scopes, st[0]), append(targets, st[1])
		}
	}
	want := "-instance TENANT/NAME, -tenant T or -env E"
	if !allowInstance {
		want = "-tenant T or -env E"
	}
	if len(scopes) != 1 || !allowInstance && scopes[0] == protocol.FlagScopeInstance {
		return "", "", usageError{fmt.Errorf("flag %s needs one of %s", verbName, want)}
	}
	if scopes[0] == protocol.FlagScopeInstance {
		if _, _, err := parseInstanceArg(targets[0]); err != nil {
			return "", "", err
		}
	}
	return scopes[0], targets[0], nil
}

func newFlagSetCmd(set bool) *cobra.Command {
	var o overrideTarget
	cmd := &cobra.Command{
		Use:   "set KEY VARIANT (-instance TENANT/NAME | -tenant T | -env E)",
		Short: "Override a flag's variant for an instance, a tenant or an environment",
		Long: `Override a flag's variant for an instance, a tenant (all its instances) or
an environment (all its instances; operators only). An instance's own
override wins over its tenant's, which wins over its environment's. The
replicas see the new value within a moment, without a restart.`,
		Example: `  drover flag set new-ui on -tenant acme
  drover flag set new-ui off -instance acme/web`,
		Args: argsExactly("KEY", "VARIANT"),
	}
	if !set {
		cmd.Use, cmd.Args = "unset KEY (-instance TENANT/NAME | -tenant T | -env E)", argsExactly("KEY")
		cmd.Short = "Remove an override: the next one (tenant, environment) or the default applies"
		cmd.Long = ""
		cmd.Example = "  drover flag unset new-ui -instance acme/web"
	}
	cmd.RunE = verb(func(c *cli, args []string) error {
		scope, target, err := o.scope(cmd.Name(), true)
		if err != nil {
			return err
		}
		where := protocol.FlagTarget(scope, target)
		if !set {
			m, err := c.api.DeleteFlagOverride(c.ctx, scope, target, args[0])
			if err != nil {
				return err
			}
			return c.show(deleted{ID: where + " " + args[0], Deleted: true, Index: m.Index}, func(w io.Writer) {
				fmt.Fprintf(w, "Removed the override of %s for %s\n", args[0], where)
			})
		}
		got, _, err := c.api.SetFlagOverride(c.ctx, scope, target, args[0], args[1])
		if err != nil {
			return err
		}
		return c.show(got, func(w io.Writer) { fmt.Fprintf(w, "Flag %s is %s for %s\n", got.Key, got.Variant, where) })
	})
	o.flags(cmd)
	return cmd
}

func newFlagListCmd() *cobra.Command {
	var o overrideTarget
	cmd := &cobra.Command{
		Use:   "list (PRODUCT | -tenant T | -env E)",
		Short: "List a product's flags, or the overrides of a tenant or an environment",
		Example: `  drover flag list crm
  drover flag list -tenant acme`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("flag list wants PRODUCT, -tenant T or -env E, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: verb(func(c *cli, args []string) error {
			if len(args) == 1 {
				if o.tenant != "" || o.env != "" {
					return usageError{errors.New("flag list wants PRODUCT, -tenant T or -env E, not several")}
				}
				fs, _, err := c.api.Flags(c.ctx, args[0], nil)
				if err != nil {
					return err
				}
				return c.show(fs, func(w io.Writer) {
					t := newTable(w, "KEY", "TYPE", "VARIANTS", "DEFAULT", "TENANT EDITABLE", "DESCRIPTION")
					for _, f := range fs {
						var vs []string
						for _, name := range sortedKeys(f.Variants) {
							vs = append(vs, name+"="+string(f.Variants[name]))
						}
						t.row(f.Key, f.Type, strings.Join(vs, ","), f.DefaultVariant, yesNo(f.TenantEditable), f.Description)
					}
					t.flush()
				})
			}
			scope, target, err := o.scope("list", false)
			if err != nil {
				return err
			}
			ovs, _, err := c.api.FlagOverrides(c.ctx, scope, target, nil)
			if err != nil {
				return err
			}
			return c.show(ovs, func(w io.Writer) {
				t := newTable(w, "KEY", "VARIANT", "UPDATED")
				for _, ov := range ovs {
					t.row(ov.Key, ov.Variant, stamp(ov.UpdatedAt))
				}
				t.flush()
			})
		}),
	}
	cmd.Flags().StringVar(&o.tenant, "tenant", "", "list a tenant's overrides")
	cmd.Flags().StringVar(&o.env, "env", "", "list an environment's overrides")
	return cmd
}

func newFlagGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get TENANT/NAME [KEY]",
		Short: "Show an instance's flag values, each with where it comes from",
		Example: `  drover flag get acme/web
  drover flag get acme/web new-ui -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("flag get wants TENANT/NAME [KEY], got %d argument(s)", len(args))}
			}
			return nil
		},
		ValidArgsFunction: completeInstances,
		RunE: verb(func(c *cli, args []string) error {
			tenant, name, err := parseInstanceArg(args[0])
			if err != nil {
				return err
			}
			fs, _, err := c.api.InstanceFlags(c.ctx, tenant, name, nil)
			if err != nil {
				return err
			}
			table := func(fs []protocol.ResolvedFlag) func(io.Writer) {
				return func(w io.Writer) {
					t := newTable(w, "KEY", "VALUE", "VARIANT", "SOURCE")
					for _, f := range fs {
						t.row(f.Key, string(f.Value), f.Variant, f.Source)
					}
					t.flush()
				}
			}
			if len(args) == 2 {
				i := slices.IndexFunc(fs, func(f protocol.ResolvedFlag) bool { return f.Key == args[1] })
				if i < 0 {
					return requestError{fmt.Sprintf("instance %s/%s has no flag %q (its product defines none of that key)", tenant, name, args[1])}
				}
				return c.show(fs[i], table(fs[i:i+1]))
			}
			return c.show(fs, table(fs))
		}),
	}
}
