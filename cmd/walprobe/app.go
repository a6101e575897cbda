package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sync/errgroup"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/agent"
	"github.com/walprobe/walprobe/sink/alert"
	"github.com/walprobe/walprobe/sink/api"
	"github.com/walprobe/walprobe/sink/history"
	"github.com/walprobe/walprobe/sink/jsonl"
	"github.com/walprobe/walprobe/sink/metrics"
	"github.com/walprobe/walprobe/sink/otlp"
	"github.com/walprobe/walprobe/sink/slo"
	"github.com/walprobe/walprobe/sink/webhook"
	"github.com/walprobe/walprobe/walstream"
)

// app is a wired probe: every component, ready to run. The optional ones
// are nil when not configured.
type app struct {
	cfg    *config
	logger *slog.Logger

	// The measurement: beats written, shown on each target, judged.
	probe   *probe.Probe
	writer  *heartbeat.Writer
	primary *probe.PrimaryWatcher
	readers []*probe.Reader
	stream  *walstream.Stream // nil: --no-stream

	// What is shown and sent.
	http    *api.Server
	history *history.History
	mp      *sdkmetric.MeterProvider
	tp      *sdktrace.TracerProvider // nil: no OTLP traces
	tracer  *otlp.Tracer             // nil: no OTLP traces
	jsonl   *jsonl.Writer            // nil: no --json
	webhook *webhook.Notifier        // nil: no --webhook-url
	alerts  *alert.Rules             // nil: no --webhook-url
	slo     *slo.SLO                 // nil: no objective
	agent   *agent.Server            // nil: no --agent-listen
	// flush bounds the metric and trace flushes on the way out.
	flush time.Duration
}

// wire builds every component of a checked configuration.
func wire(ctx context.Context, cfg *config, logger *slog.Logger, ex ...exportOptions) (*app, error) {
	p := probe.New(cfg.probe, logger)
	a := &app{cfg: cfg, logger: logger, probe: p}
	promReader, promHandler, err := metrics.Prometheus()
	if err != nil {
		return nil, err
	}
	a.http = api.New(cfg.listen, p, promHandler, logger)
	a.http.Handle(api.ReadyPattern, api.Ready(p))
	a.http.Handle(api.EligiblePattern, api.Eligible(p))
	a.http.Handle(api.ThrottlePattern, api.Throttle(p))
	if err := addExporters(ctx, a, cfg, ex, promReader, logger); err != nil {
		return nil, err
	}
	if _, err := metrics.New(p, a.mp); err != nil {
		return nil, err
	}
	if err := a.http.Listen(); err != nil {
		return nil, configErrorf("--listen %s: %w", cfg.listen, err)
	}
	a.writer, err = heartbeat.NewWriter(heartbeat.WriterConfig{
		Conn: cfg.primary, ProbeID: cfg.probe.ProbeID, Interval: cfg.probe.Interval,
		OnBeat: p.Beat, OnMiss: p.Missed, OnConn: p.WriterConn, OnConflict: p.WriterConflict,
	}, logger)
	if err != nil {
		return nil, &configError{err}
	}
	a.primary = probe.NewPrimaryWatcher(cfg.primary, p, logger)
	for _, t := range cfg.targets {
		rd, err := probe.NewReader(probe.ReaderConfig{Name: t.name, Kind: t.kind, Conn: t.conn, ProbeID: cfg.probe.ProbeID, Interval: cfg.probe.Interval}, p, logger)
		if err != nil {
			return nil, &configError{err}
		}
		a.readers = append(a.readers, rd)
	}
	if cfg.stream {
		t, err := p.Register("stream", probe.KindStream)
		if err != nil {
			return nil, &configError{err}
		}
		a.stream, err = walstream.New(walstream.Config{Conn: cfg.primary, ProbeID: cfg.probe.ProbeID}, t, logger)
		if err != nil {
			return nil, &configError{err}
		}
	}
	return a, nil
}

func (a *app) writerConn() *pgx.ConnConfig { return a.cfg.primary }

// run runs every component until ctx ends: this is the one list of what
// walprobe runs. Components return nil on cancellation; the first error
// stops the rest.
func (a *app) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.writer.Run(ctx) })
	g.Go(func() error { return a.probe.Run(ctx) })
	g.Go(func() error { return a.primary.Run(ctx) })
	for _, rd := range a.readers {
		g.Go(func() error { return rd.Run(ctx) })
	}
	if a.stream != nil {
		g.Go(func() error { return a.stream.Run(ctx) })
	}
	g.Go(func() error { return a.http.Run(ctx) })
	g.Go(func() error { return a.history.Run(ctx) })
	g.Go(func() error { return a.flushMetrics(ctx) })
	if a.tracer != nil {
		g.Go(func() error { return a.runTracer(ctx) })
	}
	if a.jsonl != nil {
		g.Go(func() error { return a.jsonl.Run(ctx) })
	}
	if a.webhook != nil {
		g.Go(func() error { return a.webhook.Run(ctx) })
	}
	if a.alerts != nil {
		g.Go(func() error { return a.alerts.Run(ctx) })
	}
	if a.slo != nil {
		g.Go(func() error { return a.slo.Run(ctx) })
	}
	if a.agent != nil {
		g.Go(func() error { return a.agent.Run(ctx) })
	}
	err := g.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.mp.Shutdown(sctx)
	return err
}

// flushMetrics flushes metrics as soon as the probe stops, in parallel
// with the trace flush and the webhook drain, so a collector that does not
// answer costs one flush timeout, not one per exporter. The provider's
// exporters time out on their own; this bounds shutdown, not export.
func (a *app) flushMetrics(ctx context.Context) error {
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), a.flush)
	defer cancel()
	if err := a.mp.Shutdown(sctx); err != nil {
		a.logger.Warn("otlp metric flush", "error", err.Error())
	}
	return nil
}

// runTracer runs the beat tracer, which ends the open beats as ctx ends,
// then flushes the spans within the flush timeout.
func (a *app) runTracer(ctx context.Context) error {
	err := a.tracer.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), a.flush)
	defer cancel()
	if serr := a.tp.Shutdown(sctx); serr != nil {
		a.logger.Warn("otlp trace flush", "error", serr.Error())
	}
	return err
}
