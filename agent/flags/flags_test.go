package flags_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/agent/flags"
	"github.com/drover-dev/drover/protocol"
)

func replica(dir, id, instance, token string, fs ...protocol.ResolvedFlag) flags.Replica {
	return flags.Replica{ID: id, Tenant: "acme", Instance: instance, Token: token, File: filepath.Join(dir, id, "flags.json"),
		Metadata: map[string]string{"tenant": "acme", "environment": "production", "plan": "pro", "instance": instance, "version": "1.4.2"},
		Flags:    fs}
}

func flag(key, variant, value, source string) protocol.ResolvedFlag {
	return protocol.ResolvedFlag{Key: key, Type: "boolean", Variant: variant, Value: json.RawMessage(value), Source: source}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func post(t *testing.T, url, token string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"context":{"targetingKey":"u1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &a.body); err != nil {
			t.Fatalf("answer %d is not JSON: %s", resp.StatusCode, b)
		}
	}
	return a
}

func TestOFREPEvaluatesTheReplicasOwnInstanceOnly(t *testing.T) {
	dir := t.TempDir()
	s := flags.New()
	srv := httptest.NewServer(s)
	defer srv.Close()
	if err := s.Set(replica(dir, "r1", "web", "tok1", flag("new-ui", "on", "true", "tenant"), flag("dark", "off", "false", "default"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(replica(dir, "r2", "api", "tok2", flag("new-ui", "off", "false", "default"))); err != nil {
		t.Fatal(err)
	}
	web := srv.URL + flags.PathPrefix("acme", "web")

	a := post(t, web+"/ofrep/v1/evaluate/flags/new-ui", "tok1")
	md, _ := a.body["metadata"].(map[string]any)
	if a.status != 200 || a.body["key"] != "new-ui" || a.body["value"] != true || a.body["variant"] != "on" ||
		a.body["reason"] != "TARGETING_MATCH" || md["tenant"] != "acme" || md["environment"] != "production" ||
		md["plan"] != "pro" || md["instance"] != "web" || md["version"] != "1.4.2" || md["source"] != "tenant" {
		t.Errorf("single evaluation: %d %v", a.status, a.body)
	}
	if a := post(t, web+"/ofrep/v1/evaluate/flags/dark", "tok1"); a.body["reason"] != "STATIC" || a.body["value"] != false {
		t.Errorf("a default value: %v", a.body)
	}
	if a := post(t, srv.URL+"/ofrep/v1/evaluate/flags/new-ui", "tok2"); a.status != 200 || a.body["value"] != false {
		t.Errorf("at the root, the token's instance answers: %d %v", a.status, a.body)
	}
	if a := post(t, web+"/ofrep/v1/evaluate/flags/nope", "tok1"); a.status != 404 || a.body["errorCode"] != "FLAG_NOT_FOUND" || a.body["key"] != "nope" {
		t.Errorf("unknown flag: %d %v", a.status, a.body)
	}
	for _, tc := range []struct {
		name, url, token string
		status           int
	}{
		{"no token", web + "/ofrep/v1/evaluate/flags/new-ui", "", 401},
		{"an unknown token", web + "/ofrep/v1/evaluate/flags/new-ui", "guess", 401},
		{"another instance's token", web + "/ofrep/v1/evaluate/flags/new-ui", "tok2", 403},
		{"another instance's bulk", web + "/ofrep/v1/evaluate/flags", "tok2", 403},
	} {
		if a := post(t, tc.url, tc.token); a.status != tc.status || a.body["value"] != nil || a.body["errorDetails"] == nil {
			t.Errorf("%s: %d %v, want %d with errorDetails and no value", tc.name, a.status, a.body, tc.status)
		}
	}

	// Bulk, with its ETag; a change makes a new one.
	a = post(t, web+"/ofrep/v1/evaluate/flags", "tok1")
	etag := a.header.Get("ETag")
	if fs, _ := a.body["flags"].([]any); a.status != 200 || len(fs) != 2 || etag == "" {
		t.Fatalf("bulk: %d %v etag %q", a.status, a.body, etag)
	}
	if a := post(t, web+"/ofrep/v1/evaluate/flags", "tok1", "If-None-Match", etag); a.status != 304 || a.body != nil {
		t.Errorf("bulk with the current ETag: %d %v, want 304 without a body", a.status, a.body)
	}
	if err := s.Set(replica(dir, "r1", "web", "tok1", flag("new-ui", "off", "false", "instance"), flag("dark", "off", "false", "default"))); err != nil {
		t.Fatal(err)
	}
	a = post(t, web+"/ofrep/v1/evaluate/flags", "tok1", "If-None-Match", etag)
	if a.status != 200 || a.header.Get("ETag") == etag {
		t.Errorf("bulk after a change with the old ETag: %d, ETag %q (was %q)", a.status, a.header.Get("ETag"), etag)
	}
	if a := post(t, web+"/ofrep/v1/evaluate/flags/new-ui", "tok1"); a.body["value"] != false || a.body["variant"] != "off" {
		t.Errorf("after the change: %v", a.body)
	}

	// A removed replica's token reads nothing.
	s.Remove("r2")
	if a := post(t, srv.URL+"/ofrep/v1/evaluate/flags/new-ui", "tok2"); a.status != 401 {
		t.Errorf("removed replica's token: %d", a.status)
	}
}

func TestFlagFileIsFlagdsSchemaReplacedOnChange(t *testing.T) {
	dir := t.TempDir()
	s := flags.New()
	r := replica(dir, "r1", "web", "tok1", flag("new-ui", "on", "true", "tenant"))
	if err := s.Set(r); err != nil {
		t.Fatal(err)
	}
	read := func() map[string]any {
		t.Helper()
		b, err := os.ReadFile(r.File)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Flags map[string]map[string]any `json:"flags"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("flag file: %v\n%s", err, b)
		}
		return doc.Flags["new-ui"]
	}
	f := read()
	if f["state"] != "ENABLED" || f["defaultVariant"] != "on" || f["variants"].(map[string]any)["on"] != true {
		t.Errorf("flag in the file: %v", f)
	}
	r.Flags = []protocol.ResolvedFlag{flag("new-ui", "off", "false", "instance")}
	if err := s.Set(r); err != nil {
		t.Fatal(err)
	}
	if f := read(); f["defaultVariant"] != "off" {
		t.Errorf("after the change: %v", f)
	}
	ents, _ := os.ReadDir(filepath.Dir(r.File))
	if len(ents) != 1 {
		t.Errorf("the folder holds %d files, want the flag file alone (no temporary left)", len(ents))
	}
}
