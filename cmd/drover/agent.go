package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/agent"
	"github.com/drover-dev/drover/internal/config"
	"github.com/drover-dev/drover/internal/logging"
	"github.com/drover-dev/drover/internal/secret"
	"github.com/drover-dev/drover/internal/tlsutil"
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
	tlsCert    string
	tlsKey     string
	portRange  string
	address    string
	metrics    string
	flagsAddr  string
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
	fs.StringVar(&f.joinToken, "join-token", "", "the cluster's agent join token, to register the first time; a drover-join.SECRET.FINGERPRINT token also pins the cluster's CA")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for the agent's record, replicas' files and logs (required)")
	fs.StringVar(&f.name, "name", "", "node name (default: the hostname)")
	fs.StringVar(&f.region, "region", "", "region of this host")
	fs.StringArrayVar(&f.labels, "label", nil, "node label key=value (repeatable)")
	fs.StringVar(&f.caFile, "ca-file", "", "CA certificate to trust for the servers' TLS (default: the CA the join token names, else the system's)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "client certificate to present to the servers (drover tls cert create -agent)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "key of -tls-cert")
	fs.StringVar(&f.address, "address", "", "IP address the gateways reach this host's replicas at (default: the address the servers see the agent connect from)")
	fs.StringVar(&f.flagsAddr, "flags-addr", agent.DefaultFlagsAddr, "loopback address where replicas read their feature flags over OFREP (DROVER_FLAGS_URL; empty: none)")
	fs.StringVar(&f.portRange, "port-range", fmt.Sprintf("%d-%d", agent.DefaultPortLo, agent.DefaultPortHi), "host ports handed to replicas, lo-hi")
	fs.StringVar(&f.metrics, "metrics-addr", "", "address of GET /metrics, the replicas' CPU and memory, such as 127.0.0.1:4782 (default: none)")
	fs.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log JSON lines")
	return cmd
}

func (f *agentFlags) agentConfig() (agent.Config, error) {
	cfg := agent.Config{DataDir: f.dataDir, Name: f.name, Region: f.region, Address: f.address, MetricsAddr: f.metrics, FlagsAddr: f.flagsAddr}
	if f.address != "" && net.ParseIP(f.address) == nil {
		return cfg, fmt.Errorf("-address %q: want an IP address", f.address)
	}
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
	var jt secret.JoinToken
	if f.joinToken != "" {
		var err error
		if jt, err = secret.ParseJoinToken(f.joinToken); err != nil {
			return cfg, fmt.Errorf("-join-token: %w", err)
		}
		cfg.JoinToken = jt.Secret
	}
	if err := f.agentTLS(&cfg, jt.CAFingerprint); err != nil {
		return cfg, err
	}
	for _, s := range f.servers {
		switch {
		case !strings.Contains(s, "://") && cfg.TLS != nil:
			s = "https://" + s
		case strings.HasPrefix(s, "http://") && jt.CAFingerprint != "":
			return cfg, fmt.Errorf("-servers %s: the join token pins the cluster's CA, so the servers are reached with https://", s)
		}
		cfg.Servers = append(cfg.Servers, s)
	}
	return cfg, nil
}

// agentTLS sets how the agent checks the servers: against -ca-file, or
// against the CA whose fingerprint the join token carries (both must then
// agree), and the client certificate it presents.
func (f *agentFlags) agentTLS(cfg *agent.Config, fingerprint string) error {
	var cert *tls.Certificate
	if f.tlsCert != "" || f.tlsKey != "" {
		c, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert and -tls-key: %w", err)
		}
		cert = &c
	}
	switch {
	case f.caFile != "":
		b, err := os.ReadFile(f.caFile)
		if err != nil {
			return fmt.Errorf("-ca-file: %w", err)
		}
		ca, err := tlsutil.ParseCert(b)
		if err != nil {
			return fmt.Errorf("-ca-file %s: %w", f.caFile, err)
		}
		if fingerprint != "" && tlsutil.Fingerprint(ca) != fingerprint {
			return fmt.Errorf("-ca-file %s is not the CA the join token names (fingerprint %s)", f.caFile, fingerprint)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		cfg.TLS = tlsutil.ClientConfig(roots, cert)
	case fingerprint != "":
		cfg.TLS = tlsutil.PinnedConfig(fingerprint, cert)
	case cert != nil:
		cfg.TLS = tlsutil.ClientConfig(nil, cert)
	}
	return nil
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
