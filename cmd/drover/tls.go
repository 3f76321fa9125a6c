package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/secret"
	"github.com/drover-dev/drover/internal/tlsutil"
)

func init() { extraCommands = append(extraCommands, newTLSCmd) }

func newTLSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Make a CA and certificates for a cluster",
		Example: `  drover tls ca create
  drover tls cert create -server -host 10.0.0.1,drover-1.example.com
  drover tls cert create -agent`,
		Args: cobra.NoArgs,
	}
	ca := &cobra.Command{Use: "ca", Short: "Make the cluster's CA", Args: cobra.NoArgs}
	ca.AddCommand(newTLSCACreateCmd())
	cert := &cobra.Command{Use: "cert", Short: "Make certificates signed by the cluster's CA", Args: cobra.NoArgs}
	cert.AddCommand(newTLSCertCreateCmd())
	cmd.AddCommand(ca, cert)
	return cmd
}

func newTLSCACreateCmd() *cobra.Command {
	var dir, name string
	var days int
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Make a CA: drover-ca.pem and drover-ca-key.pem",
		Long: `create makes a CA certificate and key for a cluster. Keep the key
(drover-ca-key.pem) off the servers: it is only needed to make certificates.
The fingerprint it prints is what agents check the servers against; the
join token made by drover acl bootstrap on servers started with -tls-ca
carries it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return usageError{fmt.Errorf("-days must be at least 1")}
			}
			p, err := tlsutil.NewCA(name, time.Duration(days)*24*time.Hour)
			if err != nil {
				return err
			}
			certPath, keyPath, err := tlsutil.WritePair(dir, "drover-ca", p)
			if err != nil {
				return err
			}
			c, err := tlsutil.ParseCert(p.Cert)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "CA certificate: %s\nCA key:         %s (keep it off the servers)\n", certPath, keyPath)
			fmt.Fprintf(out, "CA fingerprint: %s\n", tlsutil.Fingerprint(c))
			fmt.Fprintf(out, "\nJoin tokens of this cluster read %s\n", secret.JoinToken{Secret: "SECRET", CAFingerprint: tlsutil.Fingerprint(c)})
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dir, "dir", ".", "directory to write the files to")
	fs.StringVar(&name, "name", "Drover CA", "common name of the CA")
	fs.IntVar(&days, "days", int(tlsutil.DefaultCAValidity/(24*time.Hour)), "days the CA is valid")
	return cmd
}

func newTLSCertCreateCmd() *cobra.Command {
	var dir, caFile, caKey string
	var hosts []string
	var server, agentCert bool
	var days int
	cmd := &cobra.Command{
		Use:   "create -server|-agent",
		Short: "Make a server's or an agent's certificate signed by the CA",
		Long: `create makes a certificate and key signed by the cluster's CA, as
drover-server.pem and drover-server-key.pem (or drover-agent...; -1, -2, ...
when those exist). A server certificate holds the name ` + tlsutil.ServerName + `,
localhost, 127.0.0.1 and ::1, and the -host names and addresses clients
reach it at; servers prove to each other that they are servers with it.
An agent certificate is a client certificate (agent -tls-cert).`,
		Example: `  drover tls cert create -server -host 10.0.0.1,drover-1.example.com
  drover tls cert create -agent`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == agentCert {
				return usageError{fmt.Errorf("give one of -server and -agent")}
			}
			if days < 1 {
				return usageError{fmt.Errorf("-days must be at least 1")}
			}
			ca, err := tlsutil.ReadPair(caFile, caKey)
			if err != nil {
				return usageError{fmt.Errorf("read the CA (-ca, -ca-key): %w", err)}
			}
			kind, base := tlsutil.KindServer, "drover-server"
			if agentCert {
				kind, base = tlsutil.KindAgent, "drover-agent"
			}
			p, err := tlsutil.NewCert(ca, kind, hosts, time.Duration(days)*24*time.Hour)
			if err != nil {
				return err
			}
			certPath, keyPath, err := tlsutil.WritePair(dir, base, p)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Certificate: %s\nKey:         %s\n", certPath, keyPath)
			if filepath.Base(certPath) != base+".pem" {
				// The packaged configuration names base.pem: say where
				// this one goes, and how to keep one name per host.
				fmt.Fprintf(out, "(%s.pem exists here: copy these to their host as %s.pem and %s-key.pem, where the configuration expects them, or give each host its own -dir)\n", base, base, base)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&server, "server", false, "a server's certificate")
	fs.BoolVar(&agentCert, "agent", false, "an agent's client certificate")
	fs.StringVar(&caFile, "ca", filepath.Join(".", "drover-ca.pem"), "the CA's certificate")
	fs.StringVar(&caKey, "ca-key", filepath.Join(".", "drover-ca-key.pem"), "the CA's key")
	fs.StringSliceVar(&hosts, "host", nil, "extra DNS names and IP addresses of the certificate (host,...)")
	fs.StringVar(&dir, "dir", ".", "directory to write the files to")
	fs.IntVar(&days, "days", int(tlsutil.DefaultCertValidity/(24*time.Hour)), "days the certificate is valid")
	return cmd
}
