package e2e

// Helpers of the ACL scenarios (acl_test.go): clusters with ACL on, and TLS
// when asked, bootstrapped through the API; clients that send a token;
// agents; the drover CLI. They build on the harness (Cluster, Server,
// launcher) and differ from StartCluster in one way: with ACL on, the
// harness's GET /v1/status needs a token that exists only after the
// bootstrap, so the servers are found ready through the public
// GET /v1/internal/self instead.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// aclCluster is a cluster of servers with ACL on, bootstrapped.
type aclCluster struct {
	*Cluster
	t      *testing.T
	tls    *tls.Config // trusts the cluster's CA, with TLS
	caFile string      // with TLS
	// Mgmt is the bootstrap's management token; JoinToken the agent join
	// token it made.
	Mgmt, JoinToken string

	mu      sync.Mutex
	answers bytes.Buffer // every API answer any client of the cluster got
	agents  int
}

type aclOptions struct {
	servers int
	tls     bool
	args    []string
	// noBootstrap leaves POST /v1/acl/bootstrap to the test.
	noBootstrap bool
}

// startACLCluster starts servers with -acl=true (and, with TLS, a CA and
// server certificates made by `drover tls`), waits for a leader, and
// bootstraps the ACLs. Without TLS the servers find each other with a
// -server-join-token; with TLS, with their certificates alone.
func startACLCluster(t *testing.T, o aclOptions) *aclCluster {
	t.Helper()
	if o.servers == 0 {
		o.servers = 1
	}
	c := newCluster(t, WithFastRaft())
	ac := &aclCluster{Cluster: c, t: t}
	args := []string{"-acl=true"}
	if o.tls {
		c.scheme = "https"
		certDir := filepath.Join(c.dir, "tls")
		if err := os.MkdirAll(certDir, 0o700); err != nil {
			t.Fatal(err)
		}
		aclDrover(t, "", "tls", "ca", "create", "-dir", certDir)
		ca := filepath.Join(certDir, "drover-ca.pem")
		aclDrover(t, "", "tls", "cert", "create", "-server", "-dir", certDir,
			"-ca", ca, "-ca-key", filepath.Join(certDir, "drover-ca-key.pem"))
		args = append(args, "-tls-ca", ca,
			"-tls-cert", filepath.Join(certDir, "drover-server.pem"),
			"-tls-key", filepath.Join(certDir, "drover-server-key.pem"))
		b, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(b)
		ac.caFile = ca
		ac.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		c.transport.TLSClientConfig = ac.tls
	} else {
		args = append(args, "-server-join-token", "e2e-servers-"+strconv.Itoa(os.Getpid()))
	}
	c.cfg.extraArgs = append(args, o.args...)
	c.launchAll(o.servers)
	if !o.noBootstrap {
		ac.bootstrap()
	}
	return ac
}

// leader returns the server every server names as leader in
// GET /v1/internal/self, waiting for one.
func (ac *aclCluster) leader() *Server {
	ac.t.Helper()
	var leader *Server
	eventually(ac.t, waitTimeout, "a leader every server names", func() (bool, string) {
		ids := map[string]bool{}
		var views []string
		for _, s := range ac.servers {
			var self struct {
				Leader string `json:"leader"`
			}
			r, err := ac.client(s, "").Try(http.MethodGet, "/v1/internal/self", nil)
			if err != nil || !r.OK() || r.Decode(&self) != nil {
				return false, fmt.Sprintf("%s: %v %v", s.name, err, r)
			}
			ids[self.Leader] = true
			views = append(views, s.name+" names "+ac.nameOf(self.Leader))
		}
		if len(ids) != 1 || ids[""] {
			return false, strings.Join(views, ", ")
		}
		for id := range ids {
			for _, s := range ac.servers {
				if s.ID() == id {
					leader = s
				}
			}
		}
		return leader != nil, strings.Join(views, ", ")
	})
	return leader
}

// bootstrap makes the first management token through the leader, then
// waits until every server serves it (forwarding to the leader).
func (ac *aclCluster) bootstrap() {
	t := ac.t
	t.Helper()
	var tok struct {
		Secret         string `json:"secret"`
		AgentJoinToken string `json:"agent_join_token"`
	}
	eventually(t, waitTimeout, "POST /v1/acl/bootstrap to succeed", func() (bool, string) {
		r, err := ac.client(ac.leader(), "").Try(http.MethodPost, "/v1/acl/bootstrap", nil)
		if err != nil {
			return false, err.Error()
		}
		if !r.OK() {
			return false, r.String()
		}
		return r.Decode(&tok) == nil, r.String()
	})
	ac.Mgmt, ac.JoinToken = tok.Secret, tok.AgentJoinToken
	if ac.Mgmt == "" || ac.JoinToken == "" {
		t.Fatalf("bootstrap answered no management token or no join token: %+v", tok)
	}
	for _, s := range ac.servers {
		eventually(t, waitTimeout, s.name+" serving GET /v1/status with the management token", func() (bool, string) {
			r, err := ac.client(s, ac.Mgmt).Try(http.MethodGet, "/v1/status", nil)
			if err != nil {
				return false, err.Error()
			}
			return r.OK(), r.String()
		})
	}
}

// url is a server's base URL.
func (ac *aclCluster) url(s *Server) string { return s.URL() }

// client returns a client of server s sending token ("" for none), which
// retries through elections. Every answer it gets is kept, for the tests
// that look for a secret in them.
func (ac *aclCluster) client(s *Server, token string) *Client {
	c := &Client{t: ac.t, base: ac.url(s), hc: &http.Client{Timeout: defaultRequestTimeout,
		Transport: &aclTransport{ac: ac, token: token}}}
	return c.WithRetry(retryBudget)
}

// aclTransport adds the token and keeps the answers.
type aclTransport struct {
	ac    *aclCluster
	token string
}

func (t *aclTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+t.token)
	}
	resp, err := t.ac.transport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.ac.mu.Lock()
	t.ac.answers.Write(b)
	t.ac.answers.WriteByte('\n')
	t.ac.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, err
}

// allAnswers returns every API answer the cluster's clients got.
func (ac *aclCluster) allAnswers() string {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	return ac.answers.String()
}

// token creates a token through server 0 and returns its id and secret.
func (ac *aclCluster) token(role, tenant string) (id, secret string) {
	ac.t.Helper()
	var tok struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	ac.client(ac.Server(0), ac.Mgmt).JSON(http.MethodPost, "/v1/acl/tokens",
		map[string]string{"role": role, "tenant": tenant, "description": "e2e " + role}, &tok)
	if tok.ID == "" || tok.Secret == "" {
		ac.t.Fatalf("token of role %s answered without id or secret", role)
	}
	return tok.ID, tok.Secret
}

// aclAgent is an agent process.
type aclAgent struct {
	name, dataDir, logPath string
	proc                   *process
}

// startAgent starts an agent dialing every server with the given join
// token (and extra flags), logging at debug level.
func (ac *aclCluster) startAgent(joinToken string, extra ...string) *aclAgent {
	ac.t.Helper()
	ac.mu.Lock()
	ac.agents++
	name := fmt.Sprintf("a%d", ac.agents)
	ac.mu.Unlock()
	dir := filepath.Join(ac.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		ac.t.Fatal(err)
	}
	var urls []string
	for _, s := range ac.servers {
		urls = append(urls, ac.url(s))
	}
	a := &aclAgent{name: name, dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, name+".log")}
	_, portArgs, err := reserveAgentPorts()
	if err != nil {
		ac.t.Fatal(err)
	}
	// Its replicas run in sessions of their own: kill them after the agent,
	// as StartAgent's cleanup does.
	ac.t.Cleanup((&Agent{t: ac.t, name: name, dataDir: a.dataDir}).killReplicas)
	args := append(append([]string{"agent", "-servers", strings.Join(urls, ","), "-join-token", joinToken,
		"-data-dir", a.dataDir, "-name", "node-" + name, "-log-level", "debug"}, portArgs...), extra...)
	p, err := ac.launch.start(name, a.logPath, args)
	if err != nil {
		ac.t.Fatal(err)
	}
	a.proc = p
	return a
}

// log returns what the agent logged so far.
func (a *aclAgent) log() string {
	b, _ := os.ReadFile(a.logPath)
	return string(b)
}

// aclNode is a node of GET /v1/nodes.
type aclNode struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Revoked bool   `json:"revoked"`
}

// node waits for the node of agent a to be ready and returns it.
func (ac *aclCluster) node(a *aclAgent) aclNode {
	ac.t.Helper()
	var found aclNode
	eventually(ac.t, waitTimeout, "node of "+a.name+" ready", func() (bool, string) {
		var nodes []aclNode
		r, err := ac.client(ac.Server(0), ac.Mgmt).Try(http.MethodGet, "/v1/nodes", nil)
		if err != nil || !r.OK() || r.Decode(&nodes) != nil {
			return false, fmt.Sprint(err, r)
		}
		for _, n := range nodes {
			if n.Name == "node-"+a.name && n.Status == "ready" {
				found = n
				return true, ""
			}
		}
		return false, fmt.Sprintf("nodes %+v; agent log ends: %s", nodes, tail(a.logPath, 600))
	})
	return found
}

// cli runs the drover CLI against server s with token, and returns its
// standard output; a non-zero exit fails the test.
func (ac *aclCluster) cli(s *Server, token string, args ...string) string {
	ac.t.Helper()
	pre := []string{"-addr", ac.url(s)}
	if token != "" {
		pre = append(pre, "-token", token)
	}
	if ac.caFile != "" {
		pre = append(pre, "-ca-file", ac.caFile)
	}
	out := aclDrover(ac.t, "", append(args, pre...)...)
	ac.mu.Lock()
	ac.answers.WriteString(out)
	ac.mu.Unlock()
	return out
}

// aclDrover runs the drover binary with args in dir and returns its standard
// output and error; a non-zero exit fails the test.
func aclDrover(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("drover %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// aclList decodes a JSON array answer.
func aclList[T any](t *testing.T, r *Response) []T {
	t.Helper()
	var out []T
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	return out
}

// aclWait is eventually with the harness's deadline.
func aclWait(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	eventually(t, waitTimeout, what, cond)
}
