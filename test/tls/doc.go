// Package tls tests walprobe's connections over TLS against real
// PostgreSQL servers whose certificates come from a CA generated in the
// test (test/cluster Options.TLS): every sslmode against right and wrong
// CAs and host names, an RDS-style CA bundle, client certificates with
// pg_hba cert authentication, a server without TLS, the one-line errors
// pgconf.Explain gives for each failure, TCP keepalives on real sockets,
// and the walprobe binary running over verify-full with a client
// certificate.
package tls
