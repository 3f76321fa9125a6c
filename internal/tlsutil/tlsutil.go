// Package tlsutil makes and loads the TLS material of a Drover cluster: a
// CA, server and agent certificates signed by it, the CA's fingerprint that
// join tokens carry, and the tls.Configs of servers and of the clients that
// dial them.
//
// Server certificates carry the DNS name ServerName ("server.drover")
// besides their hosts, as Nomad's carry server.REGION.nomad: a server
// calling another, or an agent that pins the cluster's CA, checks for that
// name, so that an agent's certificate, signed by the same CA, cannot pose
// as a server.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Names every certificate of its kind carries.
const (
	ServerName = "server.drover"
	AgentName  = "agent.drover"
)

// Default lifetimes.
const (
	DefaultCAValidity   = 5 * 365 * 24 * time.Hour
	DefaultCertValidity = 365 * 24 * time.Hour
)

// Kind is what a certificate is for.
type Kind int

// Kinds of certificates.
const (
	KindServer Kind = iota // serves the API and the agent channel, and calls other servers
	KindAgent              // an agent's client certificate
)

// Pair is a certificate and its private key, PEM encoded.
type Pair struct {
	Cert []byte
	Key  []byte
}

// NewCA returns a self-signed CA certificate named name.
func NewCA(name string, validity time.Duration) (Pair, error) {
	if validity <= 0 {
		validity = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Drover"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Pair{}, fmt.Errorf("create CA certificate: %w", err)
	}
	return encode(der, key)
}

// NewCert returns a certificate of kind signed by ca. Hosts are extra DNS
// names or IP addresses; a server certificate always holds ServerName,
// localhost, 127.0.0.1 and ::1.
func NewCert(ca Pair, kind Kind, hosts []string, validity time.Duration) (Pair, error) {
	if validity <= 0 {
		validity = DefaultCertValidity
	}
	caCert, caKey, err := ca.parse()
	if err != nil {
		return Pair{}, fmt.Errorf("CA: %w", err)
	}
	if !caCert.IsCA {
		return Pair{}, errors.New("CA: the certificate is not a CA")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	switch kind {
	case KindServer:
		tmpl.Subject = pkix.Name{CommonName: ServerName, Organization: []string{"Drover"}}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		hosts = append([]string{ServerName, "localhost", "127.0.0.1", "::1"}, hosts...)
	case KindAgent:
		tmpl.Subject = pkix.Name{CommonName: AgentName, Organization: []string{"Drover"}}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		hosts = append([]string{AgentName}, hosts...)
	default:
		return Pair{}, fmt.Errorf("unknown certificate kind %d", kind)
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return Pair{}, fmt.Errorf("create certificate: %w", err)
	}
	return encode(der, key)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

func encode(der []byte, key *ecdsa.PrivateKey) (Pair, error) {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
	}, nil
}

func (p Pair) parse() (*x509.Certificate, any, error) {
	cert, err := ParseCert(p.Cert)
	if err != nil {
		return nil, nil, err
	}
	b, _ := pem.Decode(p.Key)
	if b == nil {
		return nil, nil, errors.New("no PEM private key found")
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		if k, err2 := x509.ParseECPrivateKey(b.Bytes); err2 == nil {
			return cert, k, nil
		}
		return nil, nil, fmt.Errorf("parse private key: %w", err)
	}
	return cert, key, nil
}

// ParseCert returns the first certificate of a PEM file's contents.
func ParseCert(pemBytes []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, pemBytes = pem.Decode(pemBytes)
		if b == nil {
			return nil, errors.New("no PEM certificate found")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// Fingerprint is the hex SHA-256 of a certificate's DER bytes: what a join
// token carries to identify the cluster's CA.
func Fingerprint(cert *x509.Certificate) string {
	h := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(h[:])
}

// Server is the TLS material of a server.
type Server struct {
	// Listen serves HTTPS; it asks for (but does not require) a client
	// certificate signed by the CA, which servers present to each other.
	Listen *tls.Config
	// Dial is for calls to other servers: it presents this server's
	// certificate and checks theirs.
	Dial *tls.Config
	// CAFingerprint is the fingerprint of the CA given, or empty.
	CAFingerprint string
}

// LoadServer reads a server's certificate, key and (optionally) the
// cluster's CA. The CA is added to the chain the server presents, so that
// an agent that knows only the CA's fingerprint can check it.
func LoadServer(certFile, keyFile, caFile string) (*Server, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("both -tls-cert and -tls-key are required for TLS")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load -tls-cert %s and -tls-key %s: %w", certFile, keyFile, err)
	}
	s := &Server{
		Listen: &tls.Config{MinVersion: tls.VersionTLS12},
		Dial:   &tls.Config{MinVersion: tls.VersionTLS12},
	}
	var roots *x509.CertPool
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("-tls-ca: %w", err)
		}
		ca, err := ParseCert(b)
		if err != nil {
			return nil, fmt.Errorf("-tls-ca %s: %w", caFile, err)
		}
		roots = x509.NewCertPool()
		roots.AddCert(ca)
		s.CAFingerprint = Fingerprint(ca)
		if !chainHas(cert.Certificate, ca.Raw) {
			cert.Certificate = append(cert.Certificate, ca.Raw)
		}
		s.Listen.ClientAuth = tls.VerifyClientCertIfGiven
		s.Listen.ClientCAs = roots
	}
	s.Listen.Certificates = []tls.Certificate{cert}
	s.Dial.Certificates = []tls.Certificate{cert}
	s.Dial.InsecureSkipVerify = true // VerifyConnection checks instead; see verifier
	s.Dial.VerifyConnection = verifier(roots, "")
	return s, nil
}

func chainHas(chain [][]byte, der []byte) bool {
	for _, c := range chain {
		if string(c) == string(der) {
			return true
		}
	}
	return false
}

// ClientConfig returns the tls.Config of a client of the servers (an agent,
// the CLI) that trusts roots (the system's when nil). It also presents
// clientCert when given.
func ClientConfig(roots *x509.CertPool, clientCert *tls.Certificate) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, VerifyConnection: verifier(roots, "")}
	if clientCert != nil {
		c.Certificates = []tls.Certificate{*clientCert}
	}
	return c
}

// PinnedConfig returns the tls.Config of a client that trusts only the CA
// whose fingerprint is given, which the servers send in their chain.
func PinnedConfig(fingerprint string, clientCert *tls.Certificate) *tls.Config {
	c := ClientConfig(nil, clientCert)
	c.VerifyConnection = verifier(nil, strings.ToLower(fingerprint))
	return c
}

// verifier checks a server's chain against roots, or, when pinned is set,
// against the certificate of its chain with that fingerprint. The leaf must
// be valid for the host dialed or for ServerName: servers dial each other by
// address, and certificates made by `drover tls cert create -server` hold
// ServerName whatever the address.
//
// The standard verification is turned off (InsecureSkipVerify) only so
// that this function can do it with these rules; it never accepts less.
func verifier(roots *x509.CertPool, pinned string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: the server sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if pinned != "" {
			roots = x509.NewCertPool()
			found := false
			for _, c := range cs.PeerCertificates {
				if Fingerprint(c) == pinned {
					roots.AddCert(c)
					found = true
				}
			}
			if !found {
				return fmt.Errorf("tls: the server's certificate chain holds no CA with fingerprint %s: it is not a server of this cluster", short(pinned))
			}
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := leaf.Verify(opts); err != nil {
			return fmt.Errorf("tls: verify server certificate: %w", err)
		}
		if cs.ServerName != "" && leaf.VerifyHostname(cs.ServerName) == nil {
			return nil
		}
		if leaf.VerifyHostname(ServerName) == nil {
			return nil
		}
		return fmt.Errorf("tls: the server's certificate is valid neither for %q nor for %q", cs.ServerName, ServerName)
	}
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "..."
	}
	return fp
}

// IsServerPeer reports whether the client of a TLS connection presented a
// certificate, verified against the cluster's CA, of a server: one that
// holds ServerName.
func IsServerPeer(cs *tls.ConnectionState) bool {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return false
	}
	return cs.VerifiedChains[0][0].VerifyHostname(ServerName) == nil
}

// LoadRoots reads a PEM file of CA certificates into a pool.
func LoadRoots(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	return pool, nil
}

// WritePair writes a certificate and its key into dir (made if missing) as NAME.pem and
// NAME-key.pem (the key readable by its owner only), where NAME is base, or
// base-1, base-2, ... when those files exist: it never overwrites.
func WritePair(dir, base string, p Pair) (certPath, keyPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	for i := 0; ; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		certPath = filepath.Join(dir, name+".pem")
		keyPath = filepath.Join(dir, name+"-key.pem")
		if exists(certPath) || exists(keyPath) {
			continue
		}
		if err := writeNew(keyPath, p.Key, 0o600); err != nil {
			return "", "", err
		}
		if err := writeNew(certPath, p.Cert, 0o644); err != nil {
			os.Remove(keyPath)
			return "", "", err
		}
		return certPath, keyPath, nil
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func writeNew(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadPair reads a certificate and key written by WritePair (or any PEM pair).
func ReadPair(certFile, keyFile string) (Pair, error) {
	c, err := os.ReadFile(certFile)
	if err != nil {
		return Pair{}, err
	}
	k, err := os.ReadFile(keyFile)
	if err != nil {
		return Pair{}, err
	}
	return Pair{Cert: c, Key: k}, nil
}
