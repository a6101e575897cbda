package pgconf

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// parseTLSHint says what to fix when pgx could not build the TLS
// configuration from the DSN's sslmode, sslrootcert, sslcert and sslkey;
// "" when err is not about TLS.
func parseTLSHint(err error) string {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) || !strings.Contains(pe.Error(), "failed to configure TLS") {
		return ""
	}
	r := reason(err)
	switch {
	case strings.Contains(r, "sslmode is invalid"):
		return "set sslmode to disable, allow, prefer, require, verify-ca or verify-full"
	case strings.Contains(r, "CA file"), strings.Contains(r, "CA to cert pool"), strings.Contains(r, "system certificate pool"):
		return "check sslrootcert: it must name a readable PEM file of CA certificates (a bundle of several is fine)"
	case strings.Contains(r, "sslpassword"), strings.Contains(r, "decrypt key"):
		return "the client key in sslkey is encrypted: set sslpassword, or give an unencrypted key"
	default:
		return "check sslcert and sslkey: both must name readable PEM files, the client certificate and its key"
	}
}

// explainTLS turns a TLS failure into what to fix; ok is false when err is
// not one.
func explainTLS(where string, err error) (msg string, ok bool) {
	var unknownCA x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	text := err.Error()
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Sprintf("%s: TLS: x509: server certificate signed by unknown authority %q: check sslrootcert: it must hold the CA that signed the server certificate (for a cloud database, the provider's CA bundle)",
			where, issuer(unknownCA.Cert)), true
	case errors.As(err, &host):
		return fmt.Sprintf("%s: TLS: %s: with sslmode=verify-full, host in the DSN must be a name the server certificate lists (or use sslmode=verify-ca to check only the CA)",
			where, host.Error()), true
	case errors.As(err, &invalid):
		return fmt.Sprintf("%s: TLS: server certificate rejected (%s): check its validity dates, its key usage and this host's clock", where, invalid.Error()), true
	case strings.Contains(text, "server refused TLS"):
		return fmt.Sprintf("%s: the server does not accept TLS (ssl = off): set sslmode=disable or prefer, or turn ssl on in the server", where), true
	case strings.Contains(text, "remote error: tls:"):
		_, alert, _ := strings.Cut(text, "remote error: ")
		return fmt.Sprintf("%s: TLS: the server rejected the handshake (%s): check that sslcert is signed by a CA in the server's ssl_ca_file, and that client and server share a TLS version", where, alert), true
	case strings.Contains(text, "tls error") || strings.Contains(text, "tls: "):
		return fmt.Sprintf("%s: TLS handshake failed (%s): check sslmode, sslrootcert, sslcert and sslkey", where, lastPart(text)), true
	}
	return "", false
}

// explainAuthTLS refines the server's 28000 (invalid authorization) for
// the cases TLS settings cause; ok is false for the others.
func explainAuthTLS(where, user string, pgErr *pgconn.PgError) (msg string, ok bool) {
	m := pgErr.Message
	switch {
	case strings.Contains(m, "requires a valid client certificate"):
		return fmt.Sprintf("%s: %s for user %q: set sslcert and sslkey to a client certificate with CN=%s signed by a CA in the server's ssl_ca_file", where, m, user, user), true
	case strings.Contains(m, "certificate authentication failed"):
		return fmt.Sprintf("%s: %s: the client certificate's CN must be the user name %q (or map it in pg_ident.conf)", where, m, user), true
	case strings.Contains(m, "no encryption"):
		// PostgreSQL says "no encryption" for every plaintext connection
		// pg_hba.conf turns away, not only when a hostssl line would match.
		return fmt.Sprintf("%s: server rejected a connection without TLS (%s): set sslmode=require or stronger if pg_hba.conf admits user %q only over TLS (hostssl), else add a pg_hba.conf entry for user %q from this host", where, m, user, user), true
	}
	return "", false
}

func issuer(c *x509.Certificate) string {
	if c == nil {
		return "?"
	}
	return c.Issuer.String()
}

// lastPart drops pgconn's "failed to connect to …: host (addr): tls
// error:" prefix and keeps the cause.
func lastPart(s string) string {
	if _, after, ok := strings.Cut(s, "tls error: "); ok {
		return after
	}
	return s
}
