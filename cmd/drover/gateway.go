package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/config"
	"github.com/drover-dev/drover/internal/logging"
	"github.com/drover-dev/drover/internal/tlsutil"
	"github.com/drover-dev/drover/proxy"
)

func init() { extraCommands = append(extraCommands, newGatewayCmd) }

type gatewayFlags struct {
	configFile      string
	servers         []string
	token           string
	listen          string
	domain          string
	tlsCert         string
	tlsKey          string
	caFile          string
	metricsAddr     string
	responseTimeout time.Duration
	maxBodyMB       int64
	logLevel        string
	logJSON         bool
}

func newGatewayCmd() *cobra.Command {
	var f gatewayFlags
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run a traffic gateway: one stable address per instance, routed to its healthy replicas",
		Long: `gateway routes HTTP requests by Host to instances' healthy replicas:
{instance}.{tenant}.{domain} and every custom domain of an instance. It keeps
its routing table from the servers (a token of role gateway reads it) and
serves the last one while no server answers. Run several for redundancy.`,
		Example: `  drover gateway -servers https://10.0.0.1:4700,https://10.0.0.2:4700 -token GATEWAY_TOKEN \
    -listen 0.0.0.0:443 -domain apps.example.com -tls-cert apps.pem -tls-key apps-key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.Apply(cmd.Flags(), f.configFile); err != nil {
				return usageError{err}
			}
			logger, err := logging.New(logging.Config{Name: "drover-gateway", Level: f.logLevel, JSON: f.logJSON})
			if err != nil {
				return usageError{err}
			}
			cfg, err := f.gatewayConfig()
			if err != nil {
				return usageError{err}
			}
			cfg.Logger = logger
			g, err := startGateway(cfg)
			if err != nil {
				return err
			}
			logger.Info("gateway listening", "addr", g.Addr(), "domain", cfg.Domain, "metrics", g.MetricsAddr())
			waitForSignal(cmd.Context())
			sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			return g.Shutdown(sctx)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.configFile, "config", "", "YAML file with flag values (keys are flag names with _ for -)")
	fs.StringSliceVar(&f.servers, "servers", nil, "servers' addresses, http(s)://host:port,... (required)")
	fs.StringVar(&f.token, "token", "", "a token of role gateway (drover acl token create -role gateway)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:4780", "address to serve traffic on")
	fs.StringVar(&f.domain, "domain", proxy.DefaultDomain, "domain of generated names: {instance}.{tenant}.DOMAIN")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "certificate to serve HTTPS with (a wildcard for *.DOMAIN's names, or several names)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "key of -tls-cert")
	fs.StringVar(&f.caFile, "ca-file", "", "CA certificate to trust for the servers' TLS (default: the system's)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:4781", "address of GET /metrics (empty: none)")
	fs.DurationVar(&f.responseTimeout, "response-timeout", proxy.DefaultResponseTimeout, "longest wait for a replica's answer headers")
	fs.Int64Var(&f.maxBodyMB, "max-body-mb", proxy.DefaultMaxBodyBytes>>20, "largest request body in MiB")
	fs.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log JSON lines")
	return cmd
}

// gatewayConfig is what a gateway process runs with: the proxy's
// configuration and its listeners.
type gatewayConfig struct {
	proxy.Config
	Listen      string
	MetricsAddr string
	TLS         *tls.Config // serving TLS, or nil
}

func (f *gatewayFlags) gatewayConfig() (gatewayConfig, error) {
	cfg := gatewayConfig{Listen: f.listen, MetricsAddr: f.metricsAddr}
	if len(f.servers) == 0 {
		return cfg, errors.New("-servers is required")
	}
	if f.domain == "" || strings.ContainsAny(f.domain, ":/ ") {
		return cfg, fmt.Errorf("-domain %q: want a host name like apps.example.com", f.domain)
	}
	if f.responseTimeout <= 0 {
		return cfg, errors.New("-response-timeout must be positive")
	}
	if f.maxBodyMB < 1 || f.maxBodyMB > 1<<20 {
		return cfg, fmt.Errorf("-max-body-mb must be between 1 and %d", 1<<20)
	}
	client := &http.Client{}
	if f.caFile != "" {
		roots, err := tlsutil.LoadRoots(f.caFile)
		if err != nil {
			return cfg, fmt.Errorf("-ca-file: %w", err)
		}
		client.Transport = &http.Transport{TLSClientConfig: tlsutil.ClientConfig(roots, nil)}
	}
	for _, s := range f.servers {
		if !strings.Contains(s, "://") {
			s = "http://" + s
			if f.caFile != "" {
				s = "https://" + strings.TrimPrefix(s, "http://")
			}
		}
		cfg.Servers = append(cfg.Servers, strings.TrimRight(s, "/"))
	}
	if f.tlsCert != "" || f.tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return cfg, fmt.Errorf("-tls-cert and -tls-key: %w", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	cfg.Token = f.token
	cfg.Domain = strings.ToLower(strings.TrimSuffix(f.domain, "."))
	cfg.Client = client
	cfg.ResponseTimeout = f.responseTimeout
	cfg.MaxBodyBytes = f.maxBodyMB << 20
	return cfg, nil
}

// runningGateway is a gateway with its listeners, as drover gateway and
// drover dev run it.
type runningGateway struct {
	gw      *proxy.Gateway
	srv     *http.Server
	metrics *http.Server
	ln      net.Listener
	mln     net.Listener
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// startGateway listens and starts keeping the routing table.
func startGateway(cfg gatewayConfig) (*runningGateway, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registry = reg
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	g := &runningGateway{gw: proxy.New(cfg.Config)}
	var err error
	if g.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("-listen: %w", err)
	}
	if cfg.MetricsAddr != "" {
		if g.mln, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			g.ln.Close()
			return nil, fmt.Errorf("-metrics-addr: %w", err)
		}
	}
	g.srv = g.gw.NewServer()
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.wg.Add(2)
	go func() {
		defer g.wg.Done()
		g.gw.Run(ctx)
	}()
	go func() {
		defer g.wg.Done()
		var err error
		if cfg.TLS != nil {
			g.srv.TLSConfig = cfg.TLS
			err = g.srv.ServeTLS(g.ln, "", "")
		} else {
			err = g.srv.Serve(g.ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("gateway listener failed", "error", err)
		}
	}()
	if g.mln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		g.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: proxy.ReadHeaderTimeout}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			_ = g.metrics.Serve(g.mln)
		}()
	}
	return g, nil
}

// Addr is where the gateway serves traffic.
func (g *runningGateway) Addr() string { return g.ln.Addr().String() }

// MetricsAddr is where it serves /metrics ("" for nowhere).
func (g *runningGateway) MetricsAddr() string {
	if g.mln == nil {
		return ""
	}
	return g.mln.Addr().String()
}

// Shutdown stops taking connections, lets requests in flight finish until
// ctx ends, and stops watching the servers.
func (g *runningGateway) Shutdown(ctx context.Context) error {
	err := g.srv.Shutdown(ctx)
	if g.metrics != nil {
		g.metrics.Shutdown(ctx)
	}
	g.cancel()
	g.wg.Wait()
	return err
}
