// Package otlp exports walprobe's metrics and per-beat traces over OTLP
// (gRPC or HTTP/protobuf) to a collector.
//
// It builds a metric reader to add to the same MeterProvider that feeds the
// Prometheus endpoint, so both show the same instruments, and a
// TracerProvider for Tracer, the probe.Observer that turns each heartbeat
// into one trace: a root span "beat" from the write until the last target
// showed it, with one child span per target.
//
// Configuration follows the OpenTelemetry environment (OTEL_EXPORTER_OTLP_*,
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES); explicit Config fields win.
// Export is off unless an endpoint is configured. It does not start a
// collector, and it never puts a DSN, password or query text in a span or
// attribute: targets are named by their configured names.
//
// It may import probe (read-only), heartbeat, sink/alert and the shared
// leaf sink, never another sink (test/lint keeps that).
package otlp
