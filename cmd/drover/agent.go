package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/agent"
	"github.com/drover-dev/drover/internal/config"
	"github.com/drover-dev/drover/internal/logging"
	"github.com/drover-dev/drover/protocol"
)

func init() { extraCommands = append(extraCommands, newAgentCmd) }

type agentFlags struct {
	configFile string
	servers    []string
	joinToken  string
	dataDir    string
	name       string
	region     string
	labels     []string
	caFile     string
	portRange  string
	logLevel   string
	logJSON    bool
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run an agent on this host: dial the servers, run the replicas they assign",
		Example: `  drover agent -servers https://10.0.0.1:4700,https://10.0.0.2:4700 -join-token TOKEN \
    -data-dir /var/lib/drover/agent -region eu-west -label zone=a`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.Apply(cmd.Flags(), f.configFile); err != nil {
				return usageError{err}
			}
			cfg, err := f.agentConfig()
			if err != nil {
				return usageError{err}
			}
			return runAgent(cmd.Context(), f, cfg)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.configFile, "config", "", "YAML file with flag values (keys are flag names with _ for -)")
	fs.StringSliceVar(&f.servers, "servers", nil, "servers' addresses, http(s)://host:port,... (required)")
	fs.StringVar(&f.joinToken, "join-token", "", "the cluster's agent join token, to register the first time")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for the agent's record, replicas' files and logs (required)")
	fs.StringVar(&f.name, "name", "", "node name (default: the hostname)")
	fs.StringVar(&f.region, "region", "", "region of this host")
	fs.StringArrayVar(&f.labels, "label", nil, "node label key=value (repeatable)")
	fs.StringVar(&f.caFile, "ca-file", "", "CA certificate to trust for the servers' TLS")
	fs.StringVar(&f.portRange, "port-range", fmt.Sprintf("%d-%d", agent.DefaultPortLo, agent.DefaultPortHi), "host ports handed to replicas, lo-hi")
	fs.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log JSON lines")
	return cmd
}

func (f *agentFlags) agentConfig() (agent.Config, error) {
	cfg := agent.Config{Servers: f.servers, JoinToken: f.joinToken, DataDir: f.dataDir, Name: f.name, Region: f.region}
	if len(f.servers) == 0 {
		return cfg, fmt.Errorf("-servers is required")
	}
	if f.dataDir == "" {
		return cfg, fmt.Errorf("-data-dir is required")
	}
	if f.region != "" {
		if err := protocol.ValidateName("region", f.region); err != nil {
			return cfg, fmt.Errorf("-region: %w", err)
		}
	}
	cfg.Labels = map[string]string{}
	for _, l := range f.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return cfg, fmt.Errorf("-label %q: want key=value", l)
		}
		cfg.Labels[k] = v
	}
	if err := protocol.ValidateLabels("label", cfg.Labels); err != nil {
		return cfg, fmt.Errorf("-%w", err)
	}
	lo, hi, ok := strings.Cut(f.portRange, "-")
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || l < 1 || h > 65535 || l > h {
		return cfg, fmt.Errorf("-port-range %q: want lo-hi within 1-65535", f.portRange)
	}
	cfg.PortRange = protocol.PortRange{Lo: l, Hi: h}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return cfg, fmt.Errorf("-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("-ca-file %s: no PEM certificate found", f.caFile)
		}
		cfg.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return cfg, nil
}

func runAgent(ctx context.Context, f agentFlags, cfg agent.Config) error {
	logger, err := logging.New(logging.Config{Name: "drover", Level: f.logLevel, JSON: f.logJSON})
	if err != nil {
		return usageError{err}
	}
	cfg.Logger = logger
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	return a.Run(ctx)
}
