package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/agent"
	"github.com/drover-dev/drover/internal/logging"
	"github.com/drover-dev/drover/protocol"
	"github.com/drover-dev/drover/proxy"
	"github.com/drover-dev/drover/server"
	"github.com/drover-dev/drover/server/api"
)

func init() { extraCommands = append(extraCommands, newDevCmd) }

type devFlags struct {
	dataDir  string
	httpAddr string
	raftAddr string
	gwAddr   string
	logLevel string
	noDemo   bool

	nomadAddr string
}

func newDevCmd() *cobra.Command {
	var f devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run one server and one agent in this process, with a demo instance, for a first look",
		Long: `dev runs a single-server cluster and an agent in one process, keeps its data
in a temporary folder (removed on exit unless -data-dir is given), turns
authentication off, and starts a demo instance of a small web app bundled in
the binary. It is for trying Drover, never for production.`,
		Example: "  go run ./cmd/drover dev\n  drover dev -http-addr 127.0.0.1:8080",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd, f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.dataDir, "data-dir", "", "keep data here instead of a temporary folder")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:4700", "address of the API, the console and the agent channel")
	fs.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:4701", "address of Raft")
	fs.StringVar(&f.gwAddr, "gateway-addr", "127.0.0.1:4780", "address of the traffic gateway (empty: none)")
	fs.StringVar(&f.nomadAddr, "nomad-addr", "127.0.0.1:4646", "address of the Nomad API compatibility listener (empty: none)")
	fs.StringVar(&f.logLevel, "log-level", "warn", "trace, debug, info, warn or error")
	fs.BoolVar(&f.noDemo, "no-demo", false, "do not create the demo instance")
	return cmd
}

func runDev(cmd *cobra.Command, f devFlags) error {
	out := cmd.OutOrStdout()
	logger, err := logging.New(logging.Config{Name: "drover", Level: f.logLevel})
	if err != nil {
		return usageError{err}
	}
	// Instance files name `drover` (examples/demo.yaml runs `drover
	// demo-app`); under `go run` the binary is not on PATH, so the dev
	// agent finds this one.
	if self, err := os.Executable(); err == nil {
		os.Setenv("PATH", filepath.Dir(self)+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	dir := f.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "drover-dev-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	var gwURL *url.URL
	if f.gwAddr != "" {
		_, port, err := net.SplitHostPort(f.gwAddr)
		if err != nil {
			return usageError{fmt.Errorf("-gateway-addr %q: want host:port", f.gwAddr)}
		}
		if gwURL, err = api.ParseGatewayURL("http://" + proxy.DefaultDomain + ":" + port); err != nil {
			return usageError{err}
		}
	}
	srv, err := server.New(server.Config{
		DataDir: dir + "/server", HTTPAddr: f.httpAddr, RaftAddr: f.raftAddr, BootstrapExpect: 1,
		Logger: logger, GatewayURL: gwURL, NomadAddr: f.nomadAddr,
	})
	if err != nil {
		return err
	}
	base := "http://" + srv.HTTPAddr()
	var gw *runningGateway
	if f.gwAddr != "" {
		gw, err = startGateway(gatewayConfig{Listen: f.gwAddr,
			Config: proxy.Config{Servers: []string{base}, Logger: logger.Named("gateway")}})
		if err != nil {
			srv.Shutdown(context.Background())
			return err
		}
	}
	// Any free port for the flags: dev's replicas end with it.
	ag, err := agent.New(agent.Config{Servers: []string{base}, DataDir: dir + "/agent", Name: "dev", Logger: logger, FlagsAddr: "127.0.0.1:0"})
	if err != nil {
		if gw != nil {
			gw.Shutdown(context.Background())
		}
		srv.Shutdown(context.Background())
		return err
	}
	ctx, stop := signalContext(context.Background())
	defer stop()
	actx, cancelAgent := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() { agentDone <- ag.Run(actx) }()

	fmt.Fprintf(out, "Drover dev mode: one server and one agent in this process.\n\n")
	fmt.Fprintf(out, "  API and console:  %s\n", base)
	if a := srv.NomadAddr(); a != "" {
		fmt.Fprintf(out, "  Nomad API:        http://%s (NOMAD_ADDR)\n", a)
	}
	if gw != nil {
		fmt.Fprintf(out, "  Gateway:          %s (instances at http://{instance}.{tenant}.%s:%s/)\n", gw.Addr(), proxy.DefaultDomain, gwURL.Port())
	}
	fmt.Fprintf(out, "  Data:             %s%s\n\n", dir, map[bool]string{true: " (removed on exit)", false: ""}[f.dataDir == ""])
	fmt.Fprintf(out, "WARNING: authentication is off. Anyone who can reach %s controls this cluster.\n\n", srv.HTTPAddr())
	if !f.noDemo {
		if err := createDemo(ctx, base, logger); err != nil {
			fmt.Fprintf(out, "Could not create the demo instance: %v\n\n", err)
		} else {
			fmt.Fprintf(out, "A demo instance, demo/hello, is starting with 2 replicas; product hello\n")
			fmt.Fprintf(out, "(releases 1.0.0 and 1.1.0) runs for tenants acme and contoso in staging and production.\n\n")
			if gw != nil {
				fmt.Fprintf(out, "The demo through the gateway: http://hello.demo.%s:%s/\n\n", proxy.DefaultDomain, gwURL.Port())
			}
		}
	}
	addrFlag := ""
	if base != "http://127.0.0.1:4700" {
		addrFlag = " -addr " + base
	}
	fmt.Fprintf(out, "Try, in another terminal:\n")
	for _, c := range []string{"status", "instance list", "instance status demo/hello", "node list", "instance logs demo/hello",
		"product show hello", "instance status acme/hello-production"} {
		fmt.Fprintf(out, "  drover%s %s\n", addrFlag, c)
	}
	fmt.Fprintf(out, "\nPress Ctrl-C to stop.\n")

	<-ctx.Done()
	fmt.Fprintf(out, "\nStopping: replicas, agent, server.\n")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if gw != nil {
		gw.Shutdown(sctx)
	}
	ag.StopAll(sctx)
	cancelAgent()
	<-agentDone
	return srv.Shutdown(sctx)
}

// createDemo waits for the cluster and creates tenant demo with instance
// hello, running the demo app bundled in this binary.
func createDemo(ctx context.Context, base string, logger hclog.Logger) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	replicas := 2
	req := protocol.InstanceRequest{
		Name: "hello", Environment: "dev", Replicas: &replicas,
		Spec: protocol.Spec{
			Version: "1.0.0",
			Command: []string{self, "demo-app", "-listen", "127.0.0.1:${PORT}"},
			Env:     map[string]string{"GREETING": "Hello from Drover"},
			Ports:   []string{"http"},
			Health: &protocol.HealthCheck{Type: protocol.HealthHTTP, Port: "http", Path: "/healthz",
				Interval: protocol.Duration(time.Second), Timeout: protocol.Duration(time.Second)},
			Update: protocol.UpdateStrategy{MinHealthyTime: protocol.Duration(2 * time.Second), AutoRollback: true},
			Stop:   protocol.StopPolicy{Timeout: protocol.Duration(5 * time.Second)},
		},
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := post(ctx, base+"/v1/tenants", protocol.Tenant{Name: "demo"})
		if err == nil || protocol.AsError(err).Code == protocol.CodeConflict {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		logger.Debug("waiting for the cluster", "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := ignoreConflict(post(ctx, base+"/v1/tenants/demo/instances", req)); err != nil {
		return err
	}
	return createDemoProduct(ctx, base, self)
}

// createDemoProduct defines product hello, the demo app, with releases
// 1.0.0 and 1.1.0 and channel stable at 1.0.0, and gives tenants acme and
// contoso an instance of it each, so that a rollout can be tried at once.
func createDemoProduct(ctx context.Context, base, self string) error {
	product := protocol.Product{Name: "hello", Description: "The demo app bundled in drover",
		Template: protocol.ProductTemplate{Ports: []string{"http"},
			Health: &protocol.HealthCheck{Type: protocol.HealthHTTP, Port: "http", Path: "/healthz",
				Interval: protocol.Duration(time.Second), Timeout: protocol.Duration(time.Second)},
			Update: protocol.UpdateStrategy{MinHealthyTime: protocol.Duration(2 * time.Second), AutoRollback: true},
			Stop:   protocol.StopPolicy{Timeout: protocol.Duration(5 * time.Second)}},
		Parameters: []protocol.Parameter{{Name: "GREETING", Type: protocol.ParamString,
			Default: json.RawMessage(`"Hello from Drover"`), Description: "what the app answers"}},
		DefaultChannel: "stable",
	}
	if err := send(ctx, http.MethodPut, base+"/v1/products/hello", product); err != nil {
		return err
	}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		rel := protocol.Release{Version: v, Command: []string{self, "demo-app", "-listen", "127.0.0.1:${PORT}"},
			Env: map[string]string{"HELLO_VERSION": v}, UpgradeFrom: ">=1.0.0", Notes: "demo release " + v}
		if err := ignoreConflict(post(ctx, base+"/v1/products/hello/releases", rel)); err != nil {
			return err
		}
	}
	if err := send(ctx, http.MethodPut, base+"/v1/products/hello/channels/stable", protocol.ChannelRequest{Release: "1.0.0"}); err != nil {
		return err
	}
	one := 1
	for _, tenant := range []string{"acme", "contoso"} {
		if err := ignoreConflict(post(ctx, base+"/v1/tenants", protocol.Tenant{Name: tenant})); err != nil {
			return err
		}
		for _, env := range []string{"staging", "production"} {
			in := protocol.InstanceRequest{Name: "hello-" + env, Environment: env, Product: "hello", Replicas: &one}
			if err := ignoreConflict(post(ctx, base+"/v1/tenants/"+tenant+"/instances", in)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ignoreConflict treats "already exists" as done: dev mode run again with
// the same -data-dir finds what it made before.
func ignoreConflict(err error) error {
	if err != nil && protocol.AsError(err).Code == protocol.CodeConflict {
		return nil
	}
	return err
}

func post(ctx context.Context, url string, body any) error {
	return send(ctx, http.MethodPost, url, body)
}

func send(ctx context.Context, method, url string, body any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "%v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var eb protocol.ErrorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(raw, &eb) == nil && eb.Error != nil {
		return eb.Error
	}
	return protocol.Errorf(protocol.CodeInternal, "%s: %s", resp.Status, raw)
}
