package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/history"
	"github.com/walprobe/walprobe/sink/jsonl"
	"github.com/walprobe/walprobe/sink/otlp"
)

// exportFlags choose where walprobe sends what it measures besides
// /metrics and /v1/state. The OTEL_EXPORTER_OTLP_* environment applies too;
// flags win.
type exportFlags struct {
	OTLPEndpoint     string        `name:"otlp-endpoint" help:"OTLP collector: http(s)://host:port[/path] or host:port (default: OTEL_EXPORTER_OTLP_ENDPOINT; OTLP is off when neither is set)." placeholder:"URL"`
	OTLPProtocol     string        `name:"otlp-protocol" help:"grpc or http (default: OTEL_EXPORTER_OTLP_PROTOCOL, else http)." placeholder:"PROTOCOL"`
	OTLPInsecure     bool          `name:"otlp-insecure" help:"Plain-text connection to a host:port --otlp-endpoint."`
	TraceSampleRatio float64       `name:"trace-sample-ratio" help:"Share of beats traced (parent-based ratio sampler)." default:"1.0"`
	HistorySize      int           `name:"history-size" help:"Samples of lag and delay kept per target for /v1/history." default:"3600"`
	JSON             bool          `name:"json" help:"Print one JSON line per beat per target to stdout."`
	TraceTimeout     time.Duration `name:"trace-timeout" help:"A beat's trace ends as an error for targets that have not shown it this long after it was sent (default: 10 intervals)." placeholder:"DURATION"`
	FlushTimeout     time.Duration `name:"flush-timeout" help:"On SIGTERM, time allowed to flush OTLP metrics and traces and send queued webhook alerts, all at once; walprobe exits within about this plus 1s even when a collector or webhook does not answer." default:"2s"`
}

// defaultFlushTimeout is --flush-timeout's default, for commands without
// the flag (demo).
const defaultFlushTimeout = 2 * time.Second

// exportOptions is exportFlags plus what the command hands down.
type exportOptions struct {
	exportFlags
	out io.Writer // stdout
}

func (r *runCmd) exports(s streams) exportOptions {
	return exportOptions{exportFlags: r.exportFlags, out: s.out}
}

// addExporters builds a's MeterProvider (Prometheus plus OTLP when
// configured) and its optional sinks: OTLP traces, history, --json lines.
// With no options (demo) only the OTEL_* environment applies.
func addExporters(ctx context.Context, a *app, cfg *config, opts []exportOptions, prom sdkmetric.Reader, logger *slog.Logger) error {
	ex := exportOptions{exportFlags: exportFlags{TraceSampleRatio: 1, HistorySize: 3600, FlushTimeout: defaultFlushTimeout}}
	if len(opts) > 0 {
		ex = opts[0]
	}
	a.flush = ex.FlushTimeout
	if a.flush <= 0 {
		a.flush = defaultFlushTimeout
	}
	oc := otlp.Config{
		Endpoint: ex.OTLPEndpoint, Protocol: ex.OTLPProtocol, Insecure: ex.OTLPInsecure,
		SampleRatio: ex.TraceSampleRatio, ProbeID: cfg.probe.ProbeID, Version: version,
	}
	if err := oc.Validate(); err != nil {
		return &configError{err}
	}
	if oc.Enabled(otlp.SignalMetrics) || oc.Enabled(otlp.SignalTraces) {
		otlp.LogExportErrors(logger)
	}
	res, err := otlp.Resource(ctx, oc)
	if err != nil {
		return err
	}
	readers := []sdkmetric.Option{sdkmetric.WithReader(prom), sdkmetric.WithResource(res)}
	rd, ok, err := otlp.MetricReader(ctx, oc)
	if err != nil {
		return &configError{err}
	}
	if ok {
		readers = append(readers, sdkmetric.WithReader(rd))
		logger.Info("exporting metrics over otlp")
	}
	a.mp = sdkmetric.NewMeterProvider(readers...)

	tp, ok, err := otlp.TracerProvider(ctx, oc, res)
	if err != nil {
		_ = a.mp.Shutdown(ctx)
		return &configError{err}
	}
	if ok {
		targets := make([]otlp.Target, 0, len(cfg.targets)+1)
		for _, t := range cfg.targets {
			targets = append(targets, otlp.ConnTarget(t.name, t.kind, &t.conn.Config))
		}
		if cfg.stream {
			targets = append(targets, otlp.ConnTarget("stream", probe.KindStream, &cfg.primary.Config))
		}
		tr, err := otlp.NewTracer(otlp.TracerConfig{Targets: targets, Interval: cfg.probe.Interval, Timeout: ex.TraceTimeout}, tp, a.probe)
		if err != nil {
			_ = a.mp.Shutdown(ctx)
			return fmt.Errorf("beat traces: %w", err)
		}
		a.probe.Observe(tr)
		a.tp, a.tracer = tp, tr
		logger.Info("exporting beat traces over otlp", "sample_ratio", ex.TraceSampleRatio)
	}

	h, err := history.New(history.Config{Capacity: ex.HistorySize, Interval: cfg.probe.Interval}, a.probe)
	if err != nil {
		_ = a.mp.Shutdown(ctx)
		return configErrorf("--history-size: %w", err)
	}
	a.probe.Observe(h)
	a.http.Handle("GET /v1/history", h)
	a.history = h

	if ex.JSON && ex.out != nil {
		a.jsonl = jsonl.New(ex.out, logger)
		a.probe.Observe(a.jsonl)
	}
	return nil
}

// Validate lets kong report bad export flags with the others, before any
// connection is tried.
func (f *exportFlags) Validate() error {
	oc := otlp.Config{Endpoint: f.OTLPEndpoint, Protocol: f.OTLPProtocol, SampleRatio: f.TraceSampleRatio}
	var errs []error
	if err := oc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if f.FlushTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--flush-timeout %s: must be positive, e.g. 2s", f.FlushTimeout))
	}
	if f.HistorySize < 1 {
		errs = append(errs, fmt.Errorf("--history-size %d: must be at least 1", f.HistorySize))
	}
	return errors.Join(errs...)
}
