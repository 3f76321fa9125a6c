package main

// The CLI of API.md: `drover <noun> <verb>` against a server's HTTP API.
// This file holds what every verb shares: the global flags, the client, the
// arguments' checks and the way errors end a command.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/client"
	"github.com/drover-dev/drover/internal/config"
	"github.com/drover-dev/drover/protocol"
)

func init() { rootSetup = append(rootSetup, addClientFlags) }

// Global flags of the CLI, on the root so that they go anywhere on the line.
const (
	flagAddr   = "addr"
	flagToken  = "token"
	flagOutput = "output"
	flagCAFile = "ca-file"
)

func addClientFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.String(flagAddr, client.DefaultAddress, "address of a Drover server (env "+config.EnvName(flagAddr)+")")
	pf.String(flagToken, "", "API token (env "+config.EnvName(flagToken)+")")
	pf.StringP(flagOutput, "o", "table", "output format of the CLI: table, json or yaml")
	pf.String(flagCAFile, "", "CA certificate to trust for the server's HTTPS (env "+config.EnvName(flagCAFile)+")")
}

// cli is what a CLI verb works with.
type cli struct {
	ctx  context.Context
	api  *client.Client
	json bool // -o json or yaml: documents, not tables
	yaml bool
	out  io.Writer // results
	errw io.Writer // progress and diagnostics when out holds JSON
	in   io.Reader
	now  func() time.Time
}

// newCLI reads the global flags (a flag given wins over its environment
// variable) and connects nothing yet: requests are made by the verbs.
func newCLI(cmd *cobra.Command) (*cli, error) {
	flag := func(name string) string {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			return ""
		}
		if !f.Changed {
			if v, ok := os.LookupEnv(config.EnvName(name)); ok && v != "" {
				return v
			}
		}
		return f.Value.String()
	}
	c := &cli{ctx: cmd.Context(), out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr(), in: cmd.InOrStdin(), now: time.Now}
	if c.ctx == nil {
		c.ctx = context.Background()
	}
	switch o := cmd.Flags().Lookup(flagOutput).Value.String(); o {
	case "table":
	case "json":
		c.json = true
	case "yaml":
		c.json, c.yaml = true, true // a document, as with json
	default:
		return nil, usageError{fmt.Errorf("-o %q: want table, json or yaml", o)}
	}
	cfg := client.Config{Address: flag(flagAddr), Token: flag(flagToken),
		OnResend: func(msg string) { fmt.Fprintf(c.errw, "Note: %s\n", msg) }}
	if ca := flag(flagCAFile); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, usageError{fmt.Errorf("-ca-file: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageError{fmt.Errorf("-ca-file %s: no PEM certificate found", ca)}
		}
		cfg.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	api, err := client.New(cfg)
	if err != nil {
		return nil, usageError{fmt.Errorf("-addr: %w", err)}
	}
	c.api = api
	return c, nil
}

// verb adapts a CLI verb to cobra: it builds the cli from the global flags,
// ends the verb's context on SIGINT or SIGTERM, and turns request errors
// into the one-line form of API.md.
// onInstance is verb for commands whose first argument is TENANT/NAME.
func onInstance(fn func(c *cli, tenant, name string) error) func(*cobra.Command, []string) error {
	return verb(func(c *cli, args []string) error {
		tenant, name, err := parseInstanceArg(args[0])
		if err != nil {
			return err
		}
		return fn(c, tenant, name)
	})
}

func verb(fn func(c *cli, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		ctx, stop := signalContext(c.ctx)
		defer stop()
		c.ctx = ctx
		return c.failure(fn(c, args))
	}
}

// requestError is a failed request as the CLI prints it.
type requestError struct{ msg string }

func (e requestError) Error() string { return e.msg }

// failure words an error of a request for the user: "message (field: x)",
// with a hint where one helps.
func (c *cli) failure(err error) error {
	if err == nil {
		return nil
	}
	var ue usageError
	var ee exitError
	if errors.As(err, &ue) || errors.As(err, &ee) {
		return err
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.Field != "" {
			msg += " (field: " + pe.Field + ")"
		}
		if pe.Code == protocol.CodeUnauthenticated {
			msg += "; give a token with -token or " + config.EnvName(flagToken)
		}
		return requestError{msg}
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) && !errors.Is(err, context.Canceled) {
		msg := fmt.Sprintf("cannot reach the server at %s: %v", c.api.Address(), urlErr.Err)
		var unknownCA x509.UnknownAuthorityError
		var invalid x509.CertificateInvalidError
		var hostname x509.HostnameError
		switch {
		case errors.As(err, &unknownCA):
			msg += "\nThe server's certificate is not signed by a CA this machine trusts: give the cluster's CA with -ca-file (or " + config.EnvName(flagCAFile) + "), e.g. -ca-file drover-ca.pem"
		case errors.As(err, &hostname):
			msg += "\nThe server's certificate does not name " + c.api.Address() + ": use the address it was made for, or make it one for this address (drover tls cert create -server -host ...)"
		case errors.As(err, &invalid):
			msg += "\nThe server's certificate is not valid (expired, or not a server certificate)"
		}
		return requestError{msg}
	}
	return err
}

// --- arguments ---

// argsExactly checks the count of positional arguments, named in the
// message as the usage line names them.
func argsExactly(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(names) == 0 {
			return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), strings.Join(args, " "))}
		}
		return usageError{fmt.Errorf("%s wants %s, got %d argument(s)", cmd.CommandPath(), strings.Join(names, " "), len(args))}
	}
}

// parseInstanceArg reads TENANT/NAME.
func parseInstanceArg(s string) (tenant, name string, err error) {
	tenant, name, err = protocol.SplitInstanceID(s)
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Field == "instance" {
			return "", "", usageError{fmt.Errorf("%q is not TENANT/NAME", s)}
		}
		return "", "", usageError{fmt.Errorf("instance %q: %w", s, err)}
	}
	return tenant, name, nil
}

// parseCount reads a replica count.
func parseCount(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, usageError{fmt.Errorf("replica count %q: want a whole number, 0 or more", s)}
	}
	return n, nil
}

// parseOnOff reads on|off.
func parseOnOff(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, usageError{fmt.Errorf("%q: want on or off", s)}
}

// parseLabels reads key=value flags.
func parseLabels(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("-%s %q: want key=value", flag, kv)}
		}
		m[k] = v
	}
	return m, nil
}

// group is a noun: its verbs are subcommands. Alone it prints its help; with
// an unknown verb it is bad usage, with the verbs that verb is close to.
// Every noun takes "show" and "status" alike: whichever the noun names, the
// other is an alias of it.
func group(cmd *cobra.Command, verbs ...*cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.DisableFlagsInUseLine = true
	cmd.SuggestionsMinimumDistance = 2 // cobra's default, which it sets for the root only
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
		}
		return usageError{errors.New(msg)}
	}
	for _, v := range verbs {
		switch v.Name() {
		case "show":
			v.Aliases = append(v.Aliases, "status")
		case "status":
			v.Aliases = append(v.Aliases, "show")
		}
	}
	cmd.AddCommand(verbs...)
	return cmd
}

// --- completion ---

// completionTimeout bounds the request a shell completion makes.
const completionTimeout = 3 * time.Second

// completeFirst completes the first positional argument with the words
// list returns; list asks the server.
func completeFirst(list func(ctx context.Context, c *cli) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := newCLI(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(c.ctx, completionTimeout)
		defer cancel()
		words, err := list(ctx, c)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, w := range words {
			if strings.HasPrefix(w, toComplete) {
				out = append(out, w)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

var completeInstances = completeFirst(func(ctx context.Context, c *cli) ([]string, error) {
	ins, _, err := c.api.Instances(ctx, client.InstanceFilter{}, nil)
	var ids []string
	for _, in := range ins {
		ids = append(ids, in.ID)
	}
	return ids, err
})

var completeNodes = completeFirst(func(ctx context.Context, c *cli) ([]string, error) {
	nodes, _, err := c.api.Nodes(ctx, nil)
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return ids, err
})

var completeTenants = completeFirst(func(ctx context.Context, c *cli) ([]string, error) {
	ts, _, err := c.api.Tenants(ctx, nil)
	var names []string
	for _, t := range ts {
		names = append(names, t.Name)
	}
	return names, err
})
