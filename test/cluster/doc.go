// Package cluster starts real PostgreSQL clusters for integration tests and
// for `walprobe demo`.
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
// visible in the server's own views, so a test can act right after.
//
// PostgreSQL refuses to run as root: when the harness runs as root, every
// server process runs as the postgres OS user. Binaries come from
// [Options.BinDir]; a missing one is a [*MissingBinaryError] naming the
// package that installs it. The package does not import "testing" so the
// demo can use it; [StartT] adapts it to tests through [TB].
package cluster
