// Package e2e holds end-to-end tests that run walprobe's writer, readers
// and binary against real PostgreSQL servers started by test/cluster, and
// show, each time asserting both sides, where the classic lag numbers lie
// and walprobe does not.
package e2e
