package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runGateway runs `drover gateway args...` until ctx ends, as systemd would
// until it stops the unit, and returns its error.
func runGateway(ctx context.Context, args ...string) error {
	cmd := newGatewayCmd()
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	return cmd.ExecuteContext(ctx)
}

// The packaged /etc/drover/gateway.yaml is accepted as it ships: every key
// is a flag of drover gateway and every value valid, so the gateway starts,
// and stops cleanly when asked. A key that is no flag is refused.
func TestPackagedGatewayConfig(t *testing.T) {
	packaged := filepath.Join("..", "..", "packaging", "etc", "gateway.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// Ports of its own, so that the test runs beside a real gateway.
	if err := runGateway(ctx, "--config", packaged, "--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-level", "error"); err != nil {
		t.Fatalf("the packaged gateway.yaml: %v", err)
	}

	b, err := os.ReadFile(packaged)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(bad, append(b, "listen_addr: 0.0.0.0:80\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	err = runGateway(context.Background(), "--config", bad)
	if err == nil || !strings.Contains(err.Error(), "listen_addr") {
		t.Fatalf("a config with an unknown key: want an error naming listen_addr, got %v", err)
	}
}
