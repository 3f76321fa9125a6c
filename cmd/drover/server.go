package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/config"
	"github.com/drover-dev/drover/internal/logging"
	"github.com/drover-dev/drover/internal/tlsutil"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/api"
	"github.com/drover-dev/drover/server/cluster"
	"github.com/drover-dev/drover/server/gateway"
	"github.com/drover-dev/drover/server/state"
)

type serverFlags struct {
	configFile      string
	id              string
	dataDir         string
	httpAddr        string
	raftAddr        string
	advertise       string
	gatewayURL      string
	pprof           bool
	bootstrapExpect int
	join            []string
	agentJoinToken  string
	serverJoinToken string
	auditMaxRecords int
	auditMaxAge     time.Duration
	tlsCert         string
	tlsKey          string
	tlsCA           string
	acl             bool
	logLevel        string
	logJSON         bool
	heartbeat       time.Duration
	election        time.Duration
	leaderLease     time.Duration
	snapshotThresh  uint64
	heartbeatTTL    time.Duration
	heartbeatGrace  time.Duration

	nomadAddr, nomadDefaultTenant string
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a server: Raft member, admin API, agent gateway, scheduler",
		Example: `  # the first of three servers
  drover server -data-dir /var/lib/drover/server -bootstrap-expect 3 \
    -http-addr 10.0.0.1:4700 -raft-addr 10.0.0.1:4701 -join 10.0.0.2:4700,10.0.0.3:4700`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.Apply(cmd.Flags(), f.configFile); err != nil {
				return usageError{err}
			}
			return runServer(cmd.Context(), f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.configFile, "config", "", "YAML file with flag values (keys are flag names with _ for -)")
	fs.StringVar(&f.id, "id", "", "server id (default: generated once and kept in the data dir)")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for the Raft log, snapshots and the server id (required)")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:4700", "address of the HTTP API and the agents' WebSocket")
	fs.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:4701", "address of Raft traffic between servers")
	fs.StringVar(&f.advertise, "advertise", "", "host other servers and agents reach this server at (default: the host of -http-addr)")
	fs.IntVar(&f.bootstrapExpect, "bootstrap-expect", 0, "form a new cluster once this many servers have found each other")
	fs.StringSliceVar(&f.join, "join", nil, "other servers' HTTP addresses (host:port,...), retried until joined")
	fs.StringVar(&f.agentJoinToken, "agent-join-token", "", "token agents present to register (default with -acl: created by drover acl bootstrap)")
	fs.StringVar(&f.serverJoinToken, "server-join-token", "", "secret servers present to each other to join the cluster, when they do not use TLS certificates of -tls-ca")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (serve HTTPS; see drover tls cert create -server)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS key file")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "CA certificate file of the cluster: servers check each other's certificates with it, and join tokens carry its fingerprint")
	fs.BoolVar(&f.acl, "acl", true, "require tokens on the API and a join token of agents")
	fs.IntVar(&f.auditMaxRecords, "audit-max-records", state.MaxAuditRecords, "audit records kept (the oldest go first)")
	fs.DurationVar(&f.auditMaxAge, "audit-max-age", 0, "drop audit records older than this (0 keeps them until -audit-max-records)")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go's profiles at /debug/pprof/ (management tokens only)")
	fs.StringVar(&f.gatewayURL, "gateway-url", api.DefaultGatewayURL, "the traffic gateways' base URL (scheme, their -domain, port): instances' endpoints are made from it")
	fs.StringVar(&f.nomadAddr, "nomad-addr", "", "address of the Nomad API compatibility listener (docs/NOMAD.md; empty: none)")
	fs.StringVar(&f.nomadDefaultTenant, "nomad-default-tenant", "default", "tenant of the Nomad API's \"default\" namespace")
	fs.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log JSON lines")
	fs.DurationVar(&f.heartbeat, "raft-heartbeat-timeout", cluster.DefaultHeartbeatTimeout, "Raft heartbeat timeout")
	fs.DurationVar(&f.election, "raft-election-timeout", cluster.DefaultElectionTimeout, "Raft election timeout")
	fs.DurationVar(&f.leaderLease, "raft-leader-lease-timeout", cluster.DefaultLeaderLeaseTimeout, "Raft leader lease timeout")
	fs.Uint64Var(&f.snapshotThresh, "raft-snapshot-threshold", cluster.DefaultSnapshotThreshold, "log entries between Raft snapshots")
	fs.DurationVar(&f.heartbeatTTL, "heartbeat-ttl", gateway.DefaultMinTTL, "time a silent agent's node stays up (grows with the fleet)")
	fs.DurationVar(&f.heartbeatGrace, "heartbeat-grace", gateway.DefaultGrace, "extra time agents get to reconnect after a leader change")
	return cmd
}

func runServer(ctx context.Context, f serverFlags) error {
	logger, err := logging.New(logging.Config{Name: "drover", Level: f.logLevel, JSON: f.logJSON})
	if err != nil {
		return usageError{err}
	}
	if f.dataDir == "" {
		return usageError{fmt.Errorf("-data-dir is required")}
	}
	var tlsCfg *tlsutil.Server
	switch {
	case f.tlsCert != "" || f.tlsKey != "":
		if tlsCfg, err = tlsutil.LoadServer(f.tlsCert, f.tlsKey, f.tlsCA); err != nil {
			return usageError{err}
		}
	case f.tlsCA != "":
		return usageError{fmt.Errorf("-tls-ca needs -tls-cert and -tls-key")}
	}
	if f.acl && tlsCfg == nil && f.serverJoinToken == "" && (f.bootstrapExpect > 1 || len(f.join) > 0) {
		return usageError{fmt.Errorf("-server-join-token is required for servers that form a cluster (-bootstrap-expect above 1, or -join) with ACLs on and without TLS: " +
			"servers prove to each other that they belong with it (or with -tls-cert certificates of -tls-ca); without it, the others' addresses are never recorded")}
	}
	if f.auditMaxRecords < 1 || f.auditMaxRecords > state.MaxAuditRecords {
		return usageError{fmt.Errorf("-audit-max-records must be between 1 and %d", state.MaxAuditRecords)}
	}
	gatewayURL, err := api.ParseGatewayURL(f.gatewayURL)
	if err != nil {
		return usageError{fmt.Errorf("-%w", err)}
	}
	if f.auditMaxAge < 0 {
		return usageError{fmt.Errorf("-audit-max-age must not be negative")}
	}
	if !f.acl {
		logger.Warn("ACLs are off (-acl=false): anyone who can reach the API controls this cluster")
	}
	if tlsCfg == nil && f.acl {
		logger.Warn("TLS is off: tokens and node secrets cross the network in clear; give -tls-cert and -tls-key")
	}
	srv, err := server.New(server.Config{
		ID: f.id, DataDir: f.dataDir, HTTPAddr: f.httpAddr, RaftAddr: f.raftAddr, Advertise: f.advertise,
		BootstrapExpect: f.bootstrapExpect, Join: f.join,
		HeartbeatTimeout: f.heartbeat, ElectionTimeout: f.election, LeaderLeaseTimeout: f.leaderLease,
		SnapshotThreshold: f.snapshotThresh, Logger: logger,
		ACL: f.acl, AgentJoinToken: f.agentJoinToken, ServerJoinToken: f.serverJoinToken, TLS: tlsCfg,
		NomadAddr: f.nomadAddr, NomadDefaultTenant: f.nomadDefaultTenant,
		AuditRetention: state.AuditRetention{MaxRecords: f.auditMaxRecords, MaxAge: f.auditMaxAge},
		HeartbeatTTL:   f.heartbeatTTL, HeartbeatGrace: f.heartbeatGrace, GatewayURL: gatewayURL, Pprof: f.pprof,
	})
	if err != nil {
		return err
	}
	waitForSignal(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// waitForSignal returns on SIGINT or SIGTERM, or when ctx ends.
func waitForSignal(ctx context.Context) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	<-ctx.Done()
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
