package agent

import (
	"slices"
	"testing"

	"github.com/drover-dev/drover/protocol"
)

func TestEnvironmentAndExpansion(t *testing.T) {
	a := &protocol.AssignedReplica{ID: "r1", Tenant: "acme", Instance: "crm", Environment: "production", Version: 4,
		Spec: protocol.Spec{
			Env:     map[string]string{"LOG_LEVEL": "info"},
			Secrets: map[string]string{"DB_PASSWORD": "hunter2"},
			Ports:   []string{"http", "admin-api"},
		}}
	ports := map[string]int{"http": 20001, "admin-api": 20002}
	env := environment(a, ports)
	for k, want := range map[string]string{
		"LOG_LEVEL": "info", "DB_PASSWORD": "hunter2", "PORT": "20001", "PORT_HTTP": "20001", "PORT_ADMIN_API": "20002",
		"DROVER_TENANT": "acme", "DROVER_INSTANCE": "crm", "DROVER_ENVIRONMENT": "production",
		"DROVER_REPLICA": "r1", "DROVER_VERSION": "4",
	} {
		if env[k] != want {
			t.Errorf("env %s = %q, want %q", k, env[k], want)
		}
	}
	got := expand([]string{"/bin/app", "--listen", "127.0.0.1:${PORT}", "--admin=${PORT_ADMIN_API}", "$LOG_LEVEL",
		"${LOG_LEVEL}/${UNKNOWN}", "--password=${DB_PASSWORD}", "${unterminated"}, variables(a, ports))
	want := []string{"/bin/app", "--listen", "127.0.0.1:20001", "--admin=20002", "$LOG_LEVEL",
		"info/", "--password=", "${unterminated"}
	if !slices.Equal(got, want) {
		t.Fatalf("expand = %q\nwant     %q", got, want)
	}
}

func TestFlagsAddrIsLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:4790": true, "[::1]:0": true, "0.0.0.0:4790": false, "10.0.0.1:4790": false, "localhost:4790": false, "4790": false} {
		if err := loopback(addr); (err == nil) != ok {
			t.Errorf("loopback(%q) = %v", addr, err)
		}
	}
}
