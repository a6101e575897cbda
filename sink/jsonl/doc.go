// Package jsonl prints one JSON line per timed beat per target (walprobe
// run --json): the raw measurements, for jq, a log shipper or a file.
//
// It is a probe.Observer that never blocks the probe: lines queue in a
// bounded channel and are dropped, and counted, when the output is too
// slow. It prints nothing else (no state, no alerts) and imports only the
// probe and the shared sink leaf.
package jsonl
