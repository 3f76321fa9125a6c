package e2e

// Scenarios of the issue "the vendor's catalogue": products, releases and
// channels through the CLI against real servers, and instances of a
// product run by a real agent.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// apiProductInstance is an instance of a product as API.md answers it.
type apiProductInstance struct {
	apiInstance
	Product    string            `json:"product"`
	Release    string            `json:"release"`
	Channel    string            `json:"channel"`
	Parameters map[string]string `json:"parameters"`
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCatalogCLIAndAProductInstance(t *testing.T) {
	c := StartCluster(t, 1, WithFastRaft())
	s := c.WaitForLeader()
	StartAgent(t, c)
	cliOK(t, s, "tenant", "create", "acme", "-region", "eu-west")
	// An agent in no region: the tenant's residency keeps its replicas off
	// it, which the instance's status says.
	product := writeFile(t, "hello.yaml", `name: hello
description: the demo app
template:
  ports: [http]
  health: {type: http, port: http, path: /healthz, interval: 200ms}
parameters:
  - {name: GREETING, type: string, default: hi}
  - {name: SEATS, type: int, min: 1, max: 10, default: 2}
  - {name: TOKEN, type: string, secret: true, required: true}
default_channel: stable
`)
	cliOK(t, s, "product", "apply", "-f", product)
	if out := cliOK(t, s, "product", "list"); !strings.Contains(out, "hello") || !strings.Contains(out, "the demo app") {
		t.Errorf("product list:\n%s", out)
	}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		rel := writeFile(t, "rel.yaml", "version: "+v+"\ncommand: ["+binPath+", demo-app, -listen, \"127.0.0.1:${PORT}\"]\nenv: {HELLO_VERSION: "+v+"}\nupgrade_from: \">=1.0.0\"\n")
		cliOK(t, s, "release", "publish", "hello", "-f", rel)
	}
	cliFails(t, s, 1, "already exists", "release", "publish", "hello", "-f", writeFile(t, "again.yaml", "version: 1.0.0\ncommand: [/bin/true]\n"))
	cliFails(t, s, 2, "upgrade_fro", "release", "publish", "hello", "-f", writeFile(t, "bad.yaml", "version: 1.2.0\ncommand: [/bin/true]\nupgrade_fro: x\n"))
	cliFails(t, s, 1, "version", "release", "publish", "hello", "-f", writeFile(t, "bad.yaml", "version: one\ncommand: [/bin/true]\n"))
	cliOK(t, s, "channel", "set", "hello", "stable", "1.0.0")
	if out := cliOK(t, s, "channel", "list", "hello"); !strings.Contains(out, "stable") || !strings.Contains(out, "1.0.0") {
		t.Errorf("channel list:\n%s", out)
	}
	out := cliOK(t, s, "product", "show", "hello")
	for _, want := range []string{"stable=1.0.0", "GREETING", "SEATS", "1..10", "TOKEN", "1.0.0", "1.1.0", ">=1.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("product show lacks %q:\n%s", want, out)
		}
	}

	inst := writeFile(t, "inst.yaml", "tenant: acme\nname: web\nproduct: hello\nreplicas: 1\nparameters: {SEATS: 3, TOKEN: s3cret}\n")
	var in apiProductInstance
	cliJSON(t, s, &in, "instance", "create", "-f", inst, "-detach")
	if in.Product != "hello" || in.Release != "1.0.0" || in.Channel != "stable" || in.Spec.Env["SEATS"] != "3" ||
		in.Spec.Env["GREETING"] != "hi" || in.Spec.Env["HELLO_VERSION"] != "1.0.0" || in.Parameters["TOKEN"] != "(secret)" {
		t.Fatalf("instance create of a product -o json = %+v", in)
	}
	eventually(t, waitTimeout, "acme/web pending outside the tenant's region", func() (bool, string) {
		out := cliOK(t, s, "instance", "status", "acme/web")
		return strings.Contains(out, "hello 1.0.0 (channel stable)") && strings.Contains(out, "eu-west"), out
	})

	// In the tenant's region, it runs the release's command, healthy.
	StartAgent(t, c, WithRegion("eu-west"))
	eventually(t, waitTimeout, "acme/web healthy in eu-west", func() (bool, string) {
		out := cliOK(t, s, "instance", "list", "-tenant", "acme")
		return strings.Contains(out, "acme/web") && strings.Contains(out, "1/1"), out
	})

	cliOK(t, s, "release", "deprecate", "hello", "1.0.0")
	cliFails(t, s, 1, "deprecated", "instance", "create", "-f", writeFile(t, "old.yaml",
		"tenant: acme\nname: old\nproduct: hello\nrelease: 1.0.0\nparameters: {TOKEN: x}\n"), "-detach")
	cliOK(t, s, "release", "recall", "hello", "1.0.0")
	if out := cliOK(t, s, "release", "list", "hello"); !strings.Contains(out, "recalled") {
		t.Errorf("release list after recall:\n%s", out)
	}
	cliFails(t, s, 1, "has 1 instance", "product", "delete", "hello")
}
