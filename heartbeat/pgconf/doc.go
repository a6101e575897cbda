// Package pgconf is walprobe's connection policy, the leaf every component
// that talks to PostgreSQL shares: it turns user-supplied DSNs into
// connection configs that are safe for a probe, reconnects on one backoff
// ([NewBackoff]) and classifies server errors once ([NeedsReconnect],
// [Rejected]). Every session gets short statement, lock and
// idle-in-transaction timeouts and TCP keepalives, and every error that
// leaves this package names the target, never its password.
//
// DSNs are libpq's, TLS included (sslmode, sslrootcert — a CA bundle is
// fine —, sslcert, sslkey). libpq's keepalives, keepalives_idle,
// keepalives_interval and keepalives_count set the TCP keepalives of the
// socket (on by default, see [DefaultKeepAliveIdle]); pgx alone would send
// them to the server as settings, which it refuses.
//
// It also translates the PostgreSQL errors an operator can fix (wrong
// password, pg_hba rejection, missing database, missing privilege, a
// certificate the other side does not trust) into one actionable line.
//
// pgconf imports no other walprobe package: heartbeat, probe and walstream
// import it, so anything it imported would sit above all three
// (test/lint enforces this).
package pgconf
