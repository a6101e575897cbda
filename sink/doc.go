// Package sink is the root of walprobe's outputs. Sub-packages:
//
//   - metrics: OpenTelemetry instruments fed by the probe, exported to
//     Prometheus (and any other OpenTelemetry reader, such as OTLP).
//   - api: the HTTP surface: /metrics, /v1/state, /healthz.
//
// Data flows one way: the probe calls observers; sinks never call back
// into the probe except to read a snapshot.
package sink
