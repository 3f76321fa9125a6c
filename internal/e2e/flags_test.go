package e2e

// Scenarios of issue 14's feature flags: a replica running a Node.js
// program with the stock OpenFeature server SDK and its OFREP provider
// (testdata/ofrep, installed by .ci/run) reads its flags from its agent,
// sees changes without a restart, and keeps them while every server is
// down; the CLI defines, sets and reads them.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FlagsURL is the agent's OFREP address (its -flags-addr).
func (a *Agent) FlagsURL() string { return "http://127.0.0.1:" + strconv.Itoa(a.portHi+1) }

// ofrepProgram returns node and the test program, skipping the test where
// node is not installed.
func ofrepProgram(t *testing.T) (node, script string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (.ci/run installs nodejs and npm): skipping the OpenFeature SDK scenario")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "ofrep"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@openfeature", "ofrep-provider")); err != nil {
		t.Fatalf("the OpenFeature packages are not installed: run `npm ci` in %s (.ci/run does): %v", dir, err)
	}
	return node, filepath.Join(dir, "flags.js")
}

// sdkDetails is what the program's SDK answered for a flag.
type sdkDetails struct {
	PID          int               `json:"pid"`
	Value        any               `json:"value"`
	Variant      string            `json:"variant"`
	Reason       string            `json:"reason"`
	ErrorCode    string            `json:"errorCode"`
	FlagMetadata map[string]string `json:"flagMetadata"`
}

func (d sdkDetails) String() string {
	return fmt.Sprintf("value %v variant %q reason %s source %q error %q (pid %d)", d.Value, d.Variant, d.Reason, d.FlagMetadata["source"], d.ErrorCode, d.PID)
}

// programGet reads one of the program's answers.
func programGet(port int, path string, out any) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func sdkFlag(port int, key string) (sdkDetails, error) {
	var d sdkDetails
	err := programGet(port, "/flag?key="+url.QueryEscape(key), &d)
	return d, err
}

func TestFlagsReachTheOpenFeatureSDKWithoutARestart(t *testing.T) {
	node, script := ofrepProgram(t)
	c := StartCluster(t, 3, WithFastRaft())
	s := c.WaitForLeader()
	a := StartAgent(t, c)
	api := s.Client().WithRetry(waitTimeout)

	api.JSON(http.MethodPut, "/v1/plans/pro", map[string]any{"max_replicas": 2}, nil)
	api.JSON(http.MethodPut, "/v1/products/app", map[string]any{"plans": []string{"pro"}, "template": map[string]any{
		"ports":   []string{"http"},
		"health":  map[string]any{"type": "http", "port": "http", "path": "/healthz", "interval": "200ms"},
		"restart": map[string]any{"policy": "always", "delay": "200ms"},
	}}, nil)
	api.JSON(http.MethodPost, "/v1/products/app/releases", map[string]any{"version": "1.0.0", "command": []string{node, script}}, nil)
	// Defined through the CLI, as a vendor would.
	cliOK(t, s, "flag", "define", "app", "new-ui", "-type", "boolean", "-variant", "on=true", "-variant", "off=false",
		"-default", "off", "-tenant-editable")
	cliFails(t, s, 1, "variants", "flag", "define", "app", "bad", "-type", "number", "-variant", `big="x"`, "-default", "big")
	cliOK(t, s, "tenant", "create", "acme")
	cliOK(t, s, "flag", "set", "new-ui", "on", "-tenant", "acme")
	for _, name := range []string{"web", "other"} {
		api.JSON(http.MethodPost, "/v1/tenants/acme/instances", map[string]any{"name": name, "product": "app", "plan": "pro",
			"release": "1.0.0", "environment": "staging"}, nil)
	}
	port := func(name string) int { return waitHealthy(t, c, "acme", name, 1)[0].Ports["http"] }
	web, other := port("web"), port("other")

	// The tenant's override, with the metadata the agent adds.
	first, err := sdkFlag(web, "new-ui")
	if err != nil {
		t.Fatal(err)
	}
	md := first.FlagMetadata
	if first.Value != true || first.Variant != "on" || first.Reason != "TARGETING_MATCH" || md["source"] != "tenant" ||
		md["tenant"] != "acme" || md["instance"] != "web" || md["environment"] != "staging" || md["plan"] != "pro" || md["version"] != "1.0.0" {
		t.Fatalf("acme/web's SDK reads new-ui as %v, metadata %v; want on from its tenant, with tenant, instance, environment, plan and version", first, md)
	}

	// An instance's override reaches the running process within 2 s.
	set := time.Now()
	cliOK(t, s, "flag", "set", "new-ui", "off", "-instance", "acme/web")
	var seen sdkDetails
	eventually(t, 2*time.Second, "acme/web's SDK to read new-ui off from its instance's override", func() (bool, string) {
		d, err := sdkFlag(web, "new-ui")
		if err != nil {
			return false, err.Error()
		}
		seen = d
		return d.Value == false && d.FlagMetadata["source"] == "instance", d.String()
	})
	recordTiming(t, "flag change to a replica's SDK", time.Since(set))
	if seen.PID != first.PID {
		t.Errorf("the program was restarted: pid %d, was %d", seen.PID, first.PID)
	}
	if d, err := sdkFlag(other, "new-ui"); err != nil || d.Value != true || d.FlagMetadata["source"] != "tenant" {
		t.Errorf("acme/other's SDK reads %v, %v; want on from the tenant (the override is acme/web's)", d, err)
	}
	if out := cliOK(t, s, "flag", "get", "acme/web"); !strings.Contains(out, "new-ui") || !strings.Contains(out, "instance") {
		t.Errorf("drover flag get acme/web:\n%s", out)
	}

	// The flagd file in the replica's folder holds the new variant.
	rs, err := listReplicas(s, "acme", "web")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Flags map[string]struct {
			State          string          `json:"state"`
			Variants       map[string]bool `json:"variants"`
			DefaultVariant string          `json:"defaultVariant"`
		} `json:"flags"`
	}
	b, err := os.ReadFile(filepath.Join(a.DataDir(), "replicas", rs[0].ID, "flags.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatalf("flag file: %v\n%s", err, b)
	}
	if f := file.Flags["new-ui"]; f.State != "ENABLED" || f.DefaultVariant != "off" || f.Variants["off"] {
		t.Errorf("flag file's new-ui = %+v, want ENABLED with default variant off (false)\n%s", f, b)
	}

	// Its own token reads nothing of another instance.
	var probe struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	if err := programGet(web, "/probe?key=new-ui&url="+url.QueryEscape(a.FlagsURL()+"/instances/acme/other"), &probe); err != nil {
		t.Fatal(err)
	}
	if probe.Status != http.StatusForbidden || strings.Contains(probe.Body, "value") {
		t.Errorf("acme/web's token at acme/other's flags: %d %s, want 403 without a value", probe.Status, probe.Body)
	}

	// Every server stopped: the agent keeps serving the last values.
	for i := range c.Servers() {
		c.Stop(i)
	}
	eventually(t, waitTimeout, "the agent to notice the servers are gone", func() (bool, string) {
		return a.LogContains("connection to server ended"), tail(a.LogPath(), 512)
	})
	readsOff := func(when string) {
		t.Helper()
		for i := range 5 {
			d, err := sdkFlag(web, "new-ui")
			if err != nil || d.Value != false || d.FlagMetadata["source"] != "instance" || d.PID != first.PID {
				t.Fatalf("read %d %s: %v, %v; want off from the instance, same pid %d", i, when, d, err, first.PID)
			}
			time.Sleep(200 * time.Millisecond) // reads spread over a second of the outage
		}
	}
	readsOff("with every server down")

	// And so does an agent restarted meanwhile, from its record.
	a.RestartNoWait()
	eventually(t, waitTimeout, "the restarted agent to re-adopt acme/web's process and serve its flags", func() (bool, string) {
		d, err := sdkFlag(web, "new-ui")
		if err != nil {
			return false, err.Error()
		}
		return d.Value == false && d.FlagMetadata["source"] == "instance", d.String()
	})
	readsOff("after the agent restarted with every server down")
}
