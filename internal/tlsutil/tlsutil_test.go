package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type testCA struct {
	pair Pair
	cert *x509.Certificate
	dir  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	p, err := NewCA("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCert(p.Cert)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{pair: p, cert: c, dir: t.TempDir()}
}

// write writes a certificate of kind signed by the CA, and the CA, and
// returns their paths.
func (ca *testCA) write(t *testing.T, kind Kind) (cert, key, caFile string) {
	t.Helper()
	p, err := NewCert(ca.pair, kind, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err = WritePair(ca.dir, "cert", p)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(ca.dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pair.Cert, 0o644); err != nil {
		t.Fatal(err)
	}
	return cert, key, caFile
}

// serve starts an HTTPS server with the TLS material of a server made by
// LoadServer; its handler answers whether the client is a server.
func serve(t *testing.T, s *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsServerPeer(r.TLS) {
			io.WriteString(w, "server")
		} else {
			io.WriteString(w, "client")
		}
	}))
	ts.TLS = s.Listen
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

func get(url string, cfg *tls.Config) (string, error) {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestClientsCheckTheServer(t *testing.T) {
	ca := newTestCA(t)
	cert, key, caFile := ca.write(t, KindServer)
	srv, err := LoadServer(cert, key, caFile)
	if err != nil {
		t.Fatal(err)
	}
	if srv.CAFingerprint != Fingerprint(ca.cert) {
		t.Fatalf("CA fingerprint %s, want %s", srv.CAFingerprint, Fingerprint(ca.cert))
	}
	ts := serve(t, srv)

	other := newTestCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	otherRoots := x509.NewCertPool()
	otherRoots.AddCert(other.cert)
	for _, tc := range []struct {
		name    string
		cfg     *tls.Config
		want    string
		wantErr string
	}{
		{"CA file", ClientConfig(roots, nil), "client", ""},
		{"pinned CA", PinnedConfig(Fingerprint(ca.cert), nil), "client", ""},
		{"another server", srv.Dial, "server", ""},
		{"wrong CA file", ClientConfig(otherRoots, nil), "", "unknown authority"},
		{"wrong pin", PinnedConfig(Fingerprint(other.cert), nil), "", "holds no CA with fingerprint"},
		{"system roots", ClientConfig(nil, nil), "", "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := get(ts.URL, tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// An agent's certificate, signed by the same CA, cannot pose as a server:
// neither to clients checking the server nor to a server checking a peer.
func TestAgentCertificateIsNotAServer(t *testing.T) {
	ca := newTestCA(t)
	sc, sk, caFile := ca.write(t, KindServer)
	srv, err := LoadServer(sc, sk, caFile)
	if err != nil {
		t.Fatal(err)
	}
	ts := serve(t, srv)
	ac, ak, _ := ca.write(t, KindAgent)
	agentCert, err := tls.LoadX509KeyPair(ac, ak)
	if err != nil {
		t.Fatal(err)
	}
	got, err := get(ts.URL, PinnedConfig(Fingerprint(ca.cert), &agentCert))
	if err != nil || got != "client" {
		t.Fatalf("a client presenting an agent certificate: got %q, %v; want it seen as a client", got, err)
	}

	// A server that serves with an agent's certificate is refused.
	fake, err := LoadServer(ac, ak, caFile)
	if err != nil {
		t.Fatal(err)
	}
	fts := serve(t, fake)
	if got, err := get(fts.URL, PinnedConfig(Fingerprint(ca.cert), nil)); err == nil {
		t.Fatalf("a server with an agent certificate was trusted: %q", got)
	}
}

func TestWritePairNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("x", 0)
	if err != nil {
		t.Fatal(err)
	}
	c1, k1, err := WritePair(dir, "drover-ca", ca)
	if err != nil {
		t.Fatal(err)
	}
	c2, _, err := WritePair(dir, "drover-ca", ca)
	if err != nil {
		t.Fatal(err)
	}
	if c1 == c2 || filepath.Base(c2) != "drover-ca-1.pem" {
		t.Fatalf("second pair written to %s after %s", c2, c1)
	}
	fi, err := os.Stat(k1)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
}
