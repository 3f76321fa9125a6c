package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// droverExit runs the drover binary and returns its output and exit code.
func droverExit(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("drover %s: %v", strings.Join(args, " "), err)
	}
	return string(out), 0
}

// TestCLIACLVerbs walks `drover acl ...` and `drover audit list` against a
// real server with ACLs on, from its bootstrap.
func TestCLIACLVerbs(t *testing.T) {
	ac := startACLCluster(t, aclOptions{noBootstrap: true})
	s := ac.leader()
	addr := []string{"-addr", ac.url(s)}

	var boot struct {
		Secret         string `json:"secret"`
		Role           string `json:"role"`
		AgentJoinToken string `json:"agent_join_token"`
	}
	eventually(t, waitTimeout, "drover acl bootstrap to succeed", func() (bool, string) {
		out, code := droverExit(t, append([]string{"acl", "bootstrap", "-o", "json"}, addr...)...)
		return code == 0 && json.Unmarshal([]byte(out), &boot) == nil, out
	})
	if boot.Secret == "" || boot.Role != "management" || !strings.HasPrefix(boot.AgentJoinToken, "drover-join.") {
		t.Fatalf("bootstrap answered %+v", boot)
	}
	if out, code := droverExit(t, append([]string{"acl", "bootstrap"}, addr...)...); code != 1 {
		t.Fatalf("a second bootstrap: exit %d, want 1\n%s", code, out)
	}

	mgmt := append([]string{"-token", boot.Secret}, addr...)
	ac.cli(s, boot.Secret, "tenant", "create", "acme")
	var viewer struct{ ID, Secret string }
	if err := json.Unmarshal([]byte(ac.cli(s, boot.Secret, "acl", "token", "create", "-role", "tenant-viewer", "-tenant", "acme", "-o", "json")), &viewer); err != nil || viewer.Secret == "" {
		t.Fatalf("token create: %v %+v", err, viewer)
	}
	var list []struct{ ID, Role, Tenant string }
	if err := json.Unmarshal([]byte(ac.cli(s, boot.Secret, "acl", "token", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tok := range list {
		found = found || tok.ID == viewer.ID && tok.Role == "tenant-viewer" && tok.Tenant == "acme"
	}
	if !found {
		t.Fatalf("token list %+v lacks the viewer token %s", list, viewer.ID)
	}

	// The viewer reads its tenant, and may not change anything.
	ac.cli(s, viewer.Secret, "instance", "list", "-tenant", "acme")
	if out, code := droverExit(t, append([]string{"tenant", "create", "other", "-token", viewer.Secret}, addr...)...); code != 1 || !strings.Contains(out, "may not") && !strings.Contains(out, "permission") {
		t.Fatalf("viewer creating a tenant: exit %d\n%q", code, out)
	}

	ac.cli(s, boot.Secret, "acl", "token", "revoke", viewer.ID)
	if out, code := droverExit(t, append([]string{"instance", "list", "-tenant", "acme", "-token", viewer.Secret}, addr...)...); code != 1 {
		t.Fatalf("a revoked token still works: exit %d\n%s", code, out)
	}

	// Refused attempts are written in batches: wait for the next one.
	eventually(t, waitTimeout, "audit list to show the refused create and the revoke", func() (bool, string) {
		var recs []struct{ Action, Result, Target string }
		out, code := droverExit(t, append([]string{"audit", "list", "-o", "json"}, mgmt...)...)
		if code != 0 || json.Unmarshal([]byte(out), &recs) != nil {
			return false, out
		}
		var sawRefused, sawRevoke bool
		for _, r := range recs {
			sawRefused = sawRefused || r.Result == "permission_denied"
			sawRevoke = sawRevoke || r.Action == "token.delete" && r.Target == viewer.ID
		}
		return sawRefused && sawRevoke, out
	})
}
