// Package cluster starts real PostgreSQL clusters for integration tests.
//
// The clusters are cmd/localcluster's (the same code runs `walprobe demo`);
// this package re-exports its API under the names the tests use and adds
// what only tests need: [StartT], which fails the test when Start fails,
// logs through t.Logf, prints every server's log tail when the test failed
// and closes the cluster in t.Cleanup, and closing the clusters on SIGINT
// or SIGTERM (Ctrl-C on go test) before the test binary dies.
//
// The package does not import "testing": [StartT] adapts to tests through
// [TB]. The product must not import it (test/lint enforces this).
package cluster
