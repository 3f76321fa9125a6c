package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/protocol"
)

func init() { extraCommands = append(extraCommands, newACLCmd, newAuditCmd) }

func newACLCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "acl",
		Short: "Bootstrap the ACL system and manage API tokens",
		Example: `  drover acl bootstrap
  drover acl token create -role tenant-admin -tenant acme
  drover acl token list`,
	},
		newACLBootstrapCmd(),
		group(&cobra.Command{
			Use:   "token",
			Short: "Create, list and revoke API tokens",
			Example: `  drover acl token create -role operator -description "on-call"
  drover acl token revoke 0b8c5c1e`,
		}, newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd()),
	)
}

// tokenTable shows a token just created, with its secret.
func tokenTable(w io.Writer, t *protocol.Token) {
	kv := []string{"ID", t.ID, "Secret", t.Secret, "Role", t.Role, "Tenant", t.Tenant,
		"Description", t.Description, "Expires", stamp(t.ExpiresAt)}
	if t.AgentJoinToken != "" {
		kv = append(kv, "Agent join token", t.AgentJoinToken)
	}
	fields(w, kv...)
	if t.Secret != "" || t.AgentJoinToken != "" {
		fmt.Fprintln(w, "\nKeep the secrets: they are shown only this once.")
	}
}

func newACLBootstrapCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "bootstrap",
		Short: "Create the first management token (works once per cluster)",
		Example: `  drover acl bootstrap
  export DROVER_TOKEN=$(drover acl bootstrap -o json | jq -r .secret)`,
		Args: argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			t, _, err := c.api.ACLBootstrap(c.ctx)
			if err != nil {
				return err
			}
			return c.show(t, func(w io.Writer) { tokenTable(w, t) })
		}),
	}
}

var tokenRoles = protocol.TokenRoles

func newTokenCreateCmd() *cobra.Command {
	var req protocol.TokenRequest
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create -role ROLE [-tenant T]",
		Short: "Create an API token",
		Long: `Create an API token with a role: ` + strings.Join(tokenRoles, ", ") + `.
The tenant roles need -tenant. The secret is shown once.`,
		Example: `  drover acl token create -role tenant-admin -tenant acme -description "acme's CI"
  drover acl token create -role operator`,
		Args: argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			req.TTL = protocol.Duration(ttl)
			if err := req.Validate(c.now()); err != nil {
				return usageError{fmt.Errorf("-%w", err)}
			}
			t, _, err := c.api.CreateToken(c.ctx, &req)
			if err != nil {
				return err
			}
			return c.show(t, func(w io.Writer) { tokenTable(w, t) })
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&req.Role, "role", "", "role of the token: "+strings.Join(tokenRoles, ", "))
	fs.StringVar(&req.Tenant, "tenant", "", "tenant of a tenant-admin or tenant-viewer token")
	fs.StringVar(&req.Description, "description", "", "what the token is for")
	fs.DurationVar(&ttl, "ttl", 0, "time until the token expires (default: never)")
	return cmd
}

func newTokenListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the API tokens (without their secrets)",
		Example: `  drover acl token list`,
		Args:    argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			ts, _, err := c.api.Tokens(c.ctx, nil)
			if err != nil {
				return err
			}
			if ts == nil {
				ts = []*protocol.Token{}
			}
			return c.show(ts, func(w io.Writer) { tokensTable(w, ts) })
		}),
	}
}

func newTokenRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke an API token",
		Example: `  drover acl token revoke 0b8c5c1e`,
		Args:    argsExactly("ID"),
		RunE: verb(func(c *cli, args []string) error {
			m, err := c.api.RevokeToken(c.ctx, args[0])
			if err != nil {
				return err
			}
			return c.show(deleted{ID: args[0], Deleted: true, Index: m.Index}, func(w io.Writer) {
				fmt.Fprintf(w, "Revoked token %s\n", args[0])
			})
		}),
	}
}

func newAuditCmd() *cobra.Command {
	var f client.AuditFilter
	list := &cobra.Command{
		Use:   "list [-tenant T] [-since DURATION]",
		Short: "List audit records: who changed what, when, and with what result",
		Example: `  drover audit list -since 24h
  drover audit list -tenant acme -o json`,
		Args: argsExactly(),
		RunE: verb(func(c *cli, _ []string) error {
			if f.Since < 0 {
				return usageError{fmt.Errorf("-since %s: want a positive duration", f.Since)}
			}
			recs, _, err := c.api.Audit(c.ctx, f, nil)
			if err != nil {
				return err
			}
			if recs == nil {
				recs = []*protocol.AuditRecord{}
			}
			return c.show(recs, func(w io.Writer) { auditTable(w, recs) })
		}),
	}
	list.Flags().StringVar(&f.Tenant, "tenant", "", "only records of this tenant")
	list.Flags().DurationVar(&f.Since, "since", 0, "only records of the last DURATION (like 30m, 24h)")
	return group(&cobra.Command{
		Use:     "audit",
		Short:   "Read the audit trail of changes",
		Example: `  drover audit list -since 1h`,
	}, list)
}
