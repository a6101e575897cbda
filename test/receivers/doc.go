// Package receivers holds end-to-end tests that send walprobe's OTLP output
// through real third-party receivers and assert on what those receivers
// got: an OpenTelemetry Collector (otlpreceiver, batchprocessor,
// debugexporter at verbosity detailed, built from otelcol-builder.yaml) over
// OTLP gRPC and OTLP/HTTP, and Prometheus 3's OTLP receiver queried through
// its HTTP API. walprobe runs as the built binary against a real
// PostgreSQL cluster from test/cluster.
//
// The receivers are built once by .ci/build-receivers into
// ${WALPROBE_TOOLS_DIR:-$HOME/.cache/walprobe/tools}; WALPROBE_OTELCOL and
// WALPROBE_PROMETHEUS point the tests at other binaries. A missing binary
// fails the test with the command that builds it. Nothing here decodes
// OTLP itself: sink/otlp's tests do that against in-process receivers.
package receivers
