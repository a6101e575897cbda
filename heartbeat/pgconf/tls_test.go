package pgconf

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestExplainTLS covers the TLS failures test/tls cannot provoke from a
// real server (an expired certificate, a TLS alert) next to those it does.
func TestExplainTLS(t *testing.T) {
	cfg, err := Parse("replica1", "host=db.example user=walprobe_cert dbname=app password=canary123")
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{Issuer: pkix.Name{CommonName: "Amazon RDS eu-west-1 Root CA"}, DNSNames: []string{"db.internal"}}
	tls := func(err error) error {
		return fmt.Errorf("failed to connect to `user=walprobe_cert database=app`: 10.0.0.1:5432 (db.example): tls error: %w", err)
	}
	tests := []struct {
		name string
		give error
		want []string
	}{
		{"unknown CA", tls(x509.UnknownAuthorityError{Cert: leaf}),
			[]string{"replica1 (db.example:5432/app): TLS: x509: server certificate signed by unknown authority", "Amazon RDS eu-west-1 Root CA", "check sslrootcert"}},
		{"host name", tls(x509.HostnameError{Certificate: leaf, Host: "db.example"}),
			[]string{"certificate is valid for db.internal, not db.example", "host in the DSN must be a name the server certificate lists"}},
		{"expired", tls(x509.CertificateInvalidError{Cert: leaf, Reason: x509.Expired, Detail: "current time is after 2026-01-01"}),
			[]string{"server certificate rejected", "expired", "validity dates"}},
		{"server without TLS", errors.New("failed to connect to `user=u database=app`: 10.0.0.1:5432 (db.example): server refused TLS connection"),
			[]string{"does not accept TLS", "sslmode=disable or prefer"}},
		{"alert from the server", tls(&net.OpError{Op: "remote error", Err: errors.New("tls: protocol version not supported")}),
			[]string{"the server rejected the handshake (tls: protocol version not supported)", "TLS version"}},
		{"other handshake failure", tls(errors.New("tls: first record does not look like a TLS handshake")),
			[]string{"TLS handshake failed (tls: first record does not look like a TLS handshake)"}},
		{"client certificate missing", &pgconn.PgError{Code: "28000", Message: "connection requires a valid client certificate"},
			[]string{"set sslcert and sslkey", "CN=walprobe_cert"}},
		{"client certificate for someone else", &pgconn.PgError{Code: "28000", Message: `certificate authentication failed for user "walprobe_cert"`},
			[]string{`CN must be the user name "walprobe_cert"`, "pg_ident.conf"}},
		{"TLS required by pg_hba", &pgconn.PgError{Code: "28000", Message: `pg_hba.conf rejects connection for host "10.0.0.9", user "walprobe_cert", database "app", no encryption`},
			[]string{"rejected a connection without TLS", "sslmode=require"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Explain("replica1", cfg, tt.give)
			got := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Explain = %q, does not say %q", got, w)
				}
			}
			if strings.Contains(got, "canary123") || strings.Contains(got, "\n") {
				t.Errorf("Explain = %q: want one password-free line", got)
			}
			if !errors.Is(err, tt.give) {
				t.Errorf("Explain does not wrap the cause")
			}
		})
	}
}
