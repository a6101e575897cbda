// Package history keeps a short, bounded memory of each target's lag and
// visibility delay and serves it downsampled at GET /v1/history, for a
// status page or a quick look without a metrics backend.
//
// Memory is fixed: one ring of Capacity samples per target, the oldest
// overwritten. It is not a time-series database: history is lost on
// restart, and nothing older than the ring is kept.
//
// It may import probe (read-only), heartbeat, sink/alert and the shared
// leaf sink, never another sink (test/lint keeps that).
package history
