// Package localcluster starts real, throwaway PostgreSQL clusters on
// 127.0.0.1: the servers behind `walprobe demo` and, wrapped by test/cluster,
// behind every integration test.
//
// [Start] brings up a primary and, as asked in [Options], physical standbys
// (pg_basebackup -R, streaming), a logical subscriber of the walprobe
// heartbeat publication and a pgbouncer in transaction pooling mode in front
// of the first standby. Every server listens on 127.0.0.1 on a free port,
// keeps its unix socket inside the cluster's temporary directory, and accepts
// the superuser postgres and the non-superuser walprobe role, both with a
// random canary password ([Cluster.Password]) that tests can search outputs
// for. [Cluster.Close] stops every process and removes the directory.
//
// The fault helpers ([Cluster.CutReceiver], [Cluster.PauseReplay],
// [Cluster.SetApplyDelay], [Cluster.DisableSubscription], [Cluster.Promote],
// [Server.Stop]) change the real servers and return only once the change is
// visible in the server's own views, so a caller can act right after.
//
// PostgreSQL refuses to run as root: when the harness runs as root, every
// server process runs as the postgres OS user. Binaries come from
// [Options.BinDir]; a missing one is a [*MissingBinaryError] naming the
// package that installs it.
//
// It is product code, linked into the walprobe binary: it imports heartbeat
// (for the schema) and nothing from test/, and never "testing", toxiproxy or
// goleak. It installs no signal handler; its callers (the demo, or
// test/cluster's StartT) own signal handling (test/lint enforces the
// imports).
package localcluster
