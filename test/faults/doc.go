// Package faults runs the walprobe binary against a real cluster through
// toxiproxy (its Go server, started inside the test) and injects network
// faults and real restarts: 200 ms latency, a bandwidth limit, reset_peer,
// a blackhole (timeout), slow_close, restarts of a standby, the primary and
// pgbouncer, and a failover with a multi-host primary DSN. Every case
// asserts the sequence of target states /v1/state showed, that lag never
// read 0 while a target was unreachable, and that missed beats are counted.
//
// The probe runs as the least-privilege role `walprobe setup --print-sql`
// describes, with its passwords in a DSN, in ~/.pgpass, in a
// --password-file and in PGPASSWORD; every log line, error, /v1/state,
// /metrics, /v1/history, --json line and webhook body is searched for
// them.
//
// It also holds the start-up cases only a real server can show: pg_hba
// rejection and missing privileges.
package faults
