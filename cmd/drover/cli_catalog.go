package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
)

// The vendor's catalogue: drover product, drover release, drover channel.

func init() {
	extraCommands = append(extraCommands, newProductCmd, newReleaseCmd, newChannelCmd)
}

// readOnlyCatalogKeys are the keys of a product or release answer that a
// file read back from `show -o json` may hold and the server sets itself.
var readOnlyCatalogKeys = []string{"created_at", "create_index", "modify_index", "channels"}

func newProductCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "product",
		Short: "Define the products tenants run: template, parameters, plans",
		Example: `  drover product apply -f examples/crm-product.yaml
  drover product list
  drover product show crm`,
	}, newProductApplyCmd(), newProductListCmd(), newProductShowCmd(), newProductDeleteCmd())
}

func newProductApplyCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or replace a product from a YAML or JSON file",
		Long: `Create or replace a product: its template (ports, health, resources, env,
restart, update, stop, constraints), the parameters a tenant may set, the
plans it is sold in and its default channel. Releases and channels are
published apart (drover release publish, drover channel set).`,
		Example: `  drover product apply -f crm.yaml`,
		Args:    argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			if file == "" {
				return usageError{errors.New("product apply needs -f FILE")}
			}
			var p protocol.Product
			if err := readDocFile("product", file, c.in, &p, readOnlyCatalogKeys...); err != nil {
				return usageError{err}
			}
			if p.Name == "" {
				return usageError{errors.New("product file: name is required")}
			}
			got, _, err := c.api.PutProduct(c.ctx, &p)
			if err != nil {
				return err
			}
			return c.show(got, func(w io.Writer) { fmt.Fprintf(w, "Applied product %s\n", got.Name) })
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "product file (YAML or JSON; - for stdin)")
	return cmd
}

func newProductListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the products",
		Example: `  drover product list -o json`,
		Args:    argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			ps, _, err := c.api.Products(c.ctx, nil)
			if err != nil {
				return err
			}
			return c.show(ps, func(w io.Writer) {
				t := newTable(w, "NAME", "PLANS", "PARAMETERS", "CHANNELS", "DESCRIPTION")
				for _, p := range ps {
					t.row(p.Name, strings.Join(p.Plans, ","), itoa(len(p.Parameters)), kvList(p.Channels), p.Description)
				}
				t.flush()
			})
		}),
	}
}

func newProductShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a product: template, parameters, plans, channels, releases",
		Example: `  drover product show crm`,
		Args:    argsExactly("NAME"),
		RunE: verb(func(c *cli, args []string) error {
			p, _, err := c.api.Product(c.ctx, args[0], nil)
			if err != nil {
				return err
			}
			rels, _, err := c.api.Releases(c.ctx, args[0], nil)
			if err != nil {
				return err
			}
			return c.show(p, func(w io.Writer) {
				fields(w, "Name", p.Name, "Description", p.Description, "Plans", strings.Join(p.Plans, ", "),
					"Default channel", p.DefaultChannel, "Channels", kvList(p.Channels),
					"Ports", strings.Join(p.Template.Ports, ", "), "Created", stamp(p.CreatedAt))
				if len(p.Parameters) > 0 {
					fmt.Fprintln(w, "\nParameters")
					t := newTable(w, "NAME", "TYPE", "DEFAULT", "ALLOWED", "REQUIRED", "SECRET")
					for _, prm := range p.Parameters {
						t.row(prm.Name, prm.Type, string(prm.Default), allowed(prm), yesNo(prm.Required), yesNo(prm.Secret))
					}
					t.flush()
				}
				fmt.Fprintln(w, "\nReleases")
				releasesTable(w, rels)
			})
		}),
	}
}

// allowed describes a parameter's enum or range.
func allowed(p protocol.Parameter) string {
	switch {
	case len(p.Enum) > 0:
		return strings.Join(p.Enum, "|")
	case p.Min != nil && p.Max != nil:
		return i64toa(*p.Min) + ".." + i64toa(*p.Max)
	case p.Min != nil:
		return ">=" + i64toa(*p.Min)
	case p.Max != nil:
		return "<=" + i64toa(*p.Max)
	}
	return ""
}

func newProductDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a product no instance runs, with its releases",
		Example: `  drover product delete crm`,
		Args:    argsExactly("NAME"),
		RunE: verb(func(c *cli, args []string) error {
			m, err := c.api.DeleteProduct(c.ctx, args[0])
			if err != nil {
				return err
			}
			return c.show(deleted{ID: args[0], Deleted: true, Index: m.Index}, func(w io.Writer) {
				fmt.Fprintf(w, "Deleted product %s\n", args[0])
			})
		}),
	}
}

func releasesTable(w io.Writer, rels []*protocol.Release) {
	t := newTable(w, "VERSION", "STATE", "UPGRADE FROM", "PUBLISHED", "NOTES")
	for _, r := range rels {
		notes, _, _ := strings.Cut(r.Notes, "\n")
		t.row(r.Version, r.State, r.UpgradeFrom, stamp(r.CreatedAt), notes)
	}
	t.flush()
}

func newReleaseCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "release",
		Short: "Publish a product's releases, list them, deprecate or recall them",
		Example: `  drover release publish crm -f crm-1.5.0.yaml
  drover release list crm
  drover release deprecate crm 1.3.0
  drover release recall crm 1.4.0`,
	}, newReleasePublishCmd(), newReleaseListCmd(),
		newReleaseStateCmd("deprecate", protocol.ReleaseDeprecated, "no new instances or upgrades to it; instances on it keep running"),
		newReleaseStateCmd("recall", protocol.ReleaseRecalled, "no new instances or upgrades to it; rollouts move instances off it first"))
}

func newReleasePublishCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "publish PRODUCT -f FILE",
		Short: "Publish a release of a product from a YAML or JSON file",
		Long: `Publish a release: its semantic version, the command its instances run,
its environment, the range of versions it upgrades from (upgrade_from,
for example ">=1.3.0") and notes. Releases are immutable but for their
state and notes.`,
		Example: `  drover release publish crm -f crm-1.5.0.yaml`,
		Args:    argsExactly("PRODUCT"),
		RunE: verb(func(c *cli, args []string) error {
			if file == "" {
				return usageError{errors.New("release publish needs -f FILE")}
			}
			var r protocol.Release
			if err := readDocFile("release", file, c.in, &r, readOnlyCatalogKeys...); err != nil {
				return usageError{err}
			}
			got, _, err := c.api.PublishRelease(c.ctx, args[0], &r)
			if err != nil {
				return err
			}
			return c.show(got, func(w io.Writer) { fmt.Fprintf(w, "Published %s %s\n", got.Product, got.Version) })
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "release file (YAML or JSON; - for stdin)")
	return cmd
}

func newReleaseListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list PRODUCT",
		Short:   "List a product's releases, oldest first",
		Example: `  drover release list crm`,
		Args:    argsExactly("PRODUCT"),
		RunE: verb(func(c *cli, args []string) error {
			rels, _, err := c.api.Releases(c.ctx, args[0], nil)
			if err != nil {
				return err
			}
			return c.show(rels, func(w io.Writer) { releasesTable(w, rels) })
		}),
	}
}

func newReleaseStateCmd(verbName, st, what string) *cobra.Command {
	return &cobra.Command{
		Use:     verbName + " PRODUCT VERSION",
		Short:   "Mark a release " + st + ": " + what,
		Example: "  drover release " + verbName + " crm 1.4.0",
		Args:    argsExactly("PRODUCT", "VERSION"),
		RunE: verb(func(c *cli, args []string) error {
			got, _, err := c.api.UpdateRelease(c.ctx, args[0], args[1], &protocol.ReleasePatch{State: &st})
			if err != nil {
				return err
			}
			return c.show(got, func(w io.Writer) { fmt.Fprintf(w, "Release %s %s is %s\n", got.Product, got.Version, got.State) })
		}),
	}
}

func newChannelCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "channel",
		Short: "Point a product's channels (stable, beta, ...) at releases",
		Example: `  drover channel set crm stable 1.5.0
  drover channel list crm`,
	}, newChannelSetCmd(), newChannelListCmd())
}

func newChannelSetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "set PRODUCT CHANNEL VERSION",
		Short: "Point a channel at an available release",
		Long: `Point a channel at an available release. New instances that follow the
channel start on it; instances already on the channel move only with a
rollout (drover rollout create).`,
		Example: `  drover channel set crm stable 1.5.0`,
		Args:    argsExactly("PRODUCT", "CHANNEL", "VERSION"),
		RunE: verb(func(c *cli, args []string) error {
			chs, _, err := c.api.SetChannel(c.ctx, args[0], args[1], args[2])
			if err != nil {
				return err
			}
			return c.show(chs, func(w io.Writer) { fmt.Fprintf(w, "Channel %s of %s points at %s\n", args[1], args[0], args[2]) })
		}),
	}
}

func newChannelListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list PRODUCT",
		Short:   "List a product's channels",
		Example: `  drover channel list crm`,
		Args:    argsExactly("PRODUCT"),
		RunE: verb(func(c *cli, args []string) error {
			chs, _, err := c.api.Channels(c.ctx, args[0], nil)
			if err != nil {
				return err
			}
			return c.show(chs, func(w io.Writer) { channelsTable(w, chs) })
		}),
	}
}

func channelsTable(w io.Writer, chs []client.Channel) {
	t := newTable(w, "CHANNEL", "RELEASE", "DEFAULT")
	for _, ch := range chs {
		t.row(ch.Name, ch.Release, yesNo(ch.Default))
	}
	t.flush()
}
