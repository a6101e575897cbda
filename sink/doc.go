// Package sink is the root of walprobe's outputs and the leaf they share.
// Sub-packages:
//
//   - metrics: OpenTelemetry instruments fed by the probe, exported to
//     Prometheus (and any other OpenTelemetry reader, such as OTLP).
//   - api: the HTTP surface: the status page, /metrics, /v1/state,
//     /healthz, /readyz.
//   - history: a bounded lag history served at /v1/history.
//   - jsonl: one JSON line per timed beat (walprobe run --json).
//   - otlp: metrics and per-beat traces over OTLP.
//   - alert: the Alert type every alert source and transport shares, and
//     the rules that raise alerts from the probe's state.
//   - slo: lag SLOs and burn-rate alerts.
//   - webhook: alert delivery over HTTP (transport only).
//   - agent: HAProxy agent checks that weight replicas by true lag.
//
// This package holds only what more than one sink needs ([WriteJSON],
// [Seconds]: the probe keeps durations, JSON shows seconds) and
// imports nothing from walprobe. A sink imports the probe (read-only),
// heartbeat, heartbeat/pgconf, this package and sink/alert, never another sink:
// cmd/walprobe wires them together (test/lint enforces this).
//
// Data flows one way: the probe calls observers; sinks never call back
// into the probe except to read a snapshot.
package sink
