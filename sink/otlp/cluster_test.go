//go:build !unit

package otlp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/metrics"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/inproc"
)

// TestClusterTraces runs a real writer, a standby reader and the logical
// stream on a real cluster and exports to a real OTLP/HTTP receiver:
// complete beats arrive as a root with one ok child per target, and no
// request carries the canary password.
func TestClusterTraces(t *testing.T) {
	const interval = 100 * time.Millisecond
	ctx := t.Context()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	r := &receiver{}
	srv := r.startHTTP(t)
	cfg := Config{Endpoint: srv.URL, ProbeID: "cluster-probe", Version: "test", SampleRatio: 1}
	res, err := Resource(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rd, _, err := MetricReader(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd), sdkmetric.WithResource(res))
	tp, _, err := TracerProvider(ctx, cfg, res, sdktrace.WithBatchTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}

	logs := &bytes.Buffer{}
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{w: logs, mu: &logMu}, nil))
	run := inproc.New(ctx, t, inproc.Config{Primary: c.Primary.DSN("walprobe"), ProbeID: "cluster-probe", Interval: interval,
		Targets: []inproc.Target{{Name: "standby1", Kind: probe.KindStandby, DSN: c.Standbys[0].DSN("walprobe")}},
		Stream:  true, NoCheck: true, Logger: logger})
	p := run.Probe
	if _, err := metrics.New(p, mp); err != nil {
		t.Fatal(err)
	}
	// The tracer names each target's server from its connection settings.
	primary, err := pgconf.Parse("primary", c.Primary.DSN("walprobe"))
	if err != nil {
		t.Fatal(err)
	}
	standby, err := pgconf.Parse("standby1", c.Standbys[0].DSN("walprobe"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTracer(TracerConfig{Interval: interval, Targets: []Target{
		ConnTarget("standby1", probe.KindStandby, &standby.Config),
		ConnTarget("stream", probe.KindStream, &primary.Config),
	}}, tp, p)
	if err != nil {
		t.Fatal(err)
	}
	p.Observe(tr)
	run.Go(tr.Run)
	run.Start()
	complete := func() int {
		spans, _ := r.allSpans()
		kids := map[string]int{}
		for _, s := range spans {
			if len(s.GetParentSpanId()) != 0 && s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
				kids[string(s.GetParentSpanId())]++
			}
		}
		n := 0
		for _, s := range spans {
			if len(s.GetParentSpanId()) == 0 && s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR && kids[string(s.GetSpanId())] == 2 {
				n++
			}
		}
		return n
	}
	fakes.WaitFor(t.Context(), t, 30*time.Second, "5 complete beat traces", func() bool { return complete() >= 5 })
	run.Stop()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Errorf("trace shutdown: %v", err)
	}
	if err := mp.Shutdown(context.Background()); err != nil {
		t.Errorf("metric shutdown: %v", err)
	}
	if _, _, ok := r.metricByName("walprobe.visibility.delay"); !ok {
		t.Errorf("walprobe.visibility.delay not received")
	}

	spans, _ := r.allSpans()
	var streamEvents int
	for _, s := range spans {
		if s.GetName() == "stream" {
			streamEvents = max(streamEvents, len(s.GetEvents()))
		}
	}
	if streamEvents != 3 {
		t.Errorf("stream spans carry at most %d events, want 3 (commit, server_sent, received)", streamEvents)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.raw {
		if bytes.Contains(b, []byte(c.Password)) {
			t.Errorf("an OTLP request carries the canary password")
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if bytes.Contains(logs.Bytes(), []byte(c.Password)) {
		t.Errorf("logs carry the canary password")
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
