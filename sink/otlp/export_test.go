package otlp

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/metrics"
)

func TestExportHTTP(t *testing.T) {
	r := &receiver{}
	srv := r.startHTTP(t)
	exportBeats(t.Context(), t, r, Config{Endpoint: srv.URL, Protocol: "http"})
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.paths {
		if p != "/v1/metrics" && p != "/v1/traces" {
			t.Errorf("export to path %q, want /v1/metrics or /v1/traces", p)
		}
	}
}

func TestExportGRPC(t *testing.T) {
	r := &receiver{}
	addr := r.startGRPC(t)
	exportBeats(t.Context(), t, r, Config{Endpoint: addr, Protocol: "grpc", Insecure: true})
}

// TestExportEnv configures everything through the standard variables: the
// protocol choice must reach a gRPC receiver, the resource must carry
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
func TestExportEnv(t *testing.T) {
	r := &receiver{}
	addr := r.startGRPC(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_SERVICE_NAME", "walprobe-eu")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
	res := exportBeats(t.Context(), t, r, Config{})
	if got := res["service.name"].GetStringValue(); got != "walprobe-eu" {
		t.Errorf("service.name = %q, want walprobe-eu (OTEL_SERVICE_NAME)", got)
	}
	if got := res["deployment.environment.name"].GetStringValue(); got != "test" {
		t.Errorf("deployment.environment.name = %q, want test", got)
	}
}

// exportBeats drives a probe with two synthetic beats through real
// exporters to r: beat 1 is shown by both targets, beat 2 only by the
// stream. It checks what r decoded and returns the resource attributes.
func exportBeats(ctx context.Context, t *testing.T, r *receiver, cfg Config) map[string]*commonpb.AnyValue {
	t.Helper()
	cfg.ProbeID, cfg.Version, cfg.SampleRatio = "probe-1", "v0.0.0-test", 1
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	res, err := Resource(ctx, cfg)
	if err != nil {
		t.Fatalf("Resource: %v", err)
	}
	rd, ok, err := MetricReader(ctx, cfg)
	if err != nil || !ok {
		t.Fatalf("MetricReader: ok %v, %v", ok, err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd), sdkmetric.WithResource(res))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	tp, ok, err := TracerProvider(ctx, cfg, res)
	if err != nil || !ok {
		t.Fatalf("TracerProvider: ok %v, %v", ok, err)
	}
	defer func() { _ = tp.Shutdown(context.Background()) }()

	p := probe.New(probe.Config{ProbeID: "probe-1", Interval: 100 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := metrics.New(p, mp); err != nil {
		t.Fatalf("metrics.New: %v", err)
	}
	replica, _ := p.Register("replica1", probe.KindStandby)
	stream, _ := p.Register("stream", probe.KindStream)
	tr, err := NewTracer(TracerConfig{
		Interval: 100 * time.Millisecond,
		Targets: []Target{
			{Name: "replica1", Kind: probe.KindStandby, Attrs: []attribute.KeyValue{attribute.String("server.address", "10.0.0.2"), attribute.Int("server.port", 5432)}},
			{Name: "stream", Kind: probe.KindStream},
		},
	}, tp, p)
	if err != nil {
		t.Fatalf("NewTracer: %v", err)
	}
	p.Observe(tr)

	t0 := time.Now().Add(-time.Second)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	replica.Seen(0, t0, t0) // first polls only learn the position
	stream.Seen(0, t0, t0)
	p.Beat(heartbeat.Beat{Seq: 1, Sent: ms(0), Acked: ms(2), LSN: 0x16B3748, PrimaryTime: ms(1)})
	stream.Seen(1, ms(4), ms(4))
	stream.Stages(probe.StreamStages{Seq: 1, Commit: ms(1), ServerSent: ms(3), Received: ms(4)})
	replica.Seen(1, ms(6), ms(10)) // visible at 8 ms ± 2 ms
	p.Beat(heartbeat.Beat{Seq: 2, Sent: ms(100), Acked: ms(102), LSN: 0x16B3800, PrimaryTime: ms(101)})
	stream.Seen(2, ms(105), ms(105))
	stream.Stages(probe.StreamStages{Seq: 2, Commit: ms(101), ServerSent: ms(103), Received: ms(105)})
	tr.now = func() time.Time { return ms(100).Add(time.Hour) }
	tr.expire() // replica1 never showed beat 2

	if err := mp.ForceFlush(ctx); err != nil {
		t.Fatalf("metrics flush: %v", err)
	}
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatalf("trace flush: %v", err)
	}

	// Metrics.
	var resAttrs map[string]*commonpb.AnyValue
	for _, name := range []string{"walprobe.lag", "walprobe.visibility.delay"} {
		m, mres, ok := r.metricByName(name)
		if !ok {
			t.Fatalf("metric %s not received", name)
		}
		if m.GetUnit() != "s" {
			t.Errorf("%s unit = %q, want s", name, m.GetUnit())
		}
		a := attrMap(mres.GetAttributes())
		resAttrs = a
		if got := a["service.instance.id"].GetStringValue(); got != "probe-1" {
			t.Errorf("%s resource service.instance.id = %q, want probe-1", name, got)
		}
		if got := a["service.version"].GetStringValue(); got != "v0.0.0-test" {
			t.Errorf("%s resource service.version = %q, want v0.0.0-test", name, got)
		}
		if cfg.Endpoint != "" {
			if got := a["service.name"].GetStringValue(); got != "walprobe" {
				t.Errorf("%s resource service.name = %q, want walprobe", name, got)
			}
		}
	}
	m, _, _ := r.metricByName("walprobe.visibility.delay")
	var count uint64
	for _, dp := range m.GetHistogram().GetDataPoints() {
		count += dp.GetCount()
	}
	if count != 3 {
		t.Errorf("walprobe.visibility.delay count = %d, want 3 (two on the stream, one on replica1)", count)
	}

	// Traces: two roots, each with one child per target.
	spans, _ := r.allSpans()
	if len(spans) != 6 {
		t.Fatalf("got %d spans, want 6 (2 beats × (root + 2 targets))", len(spans))
	}
	roots := map[string]*tracepb.Span{}
	for _, s := range spans {
		if len(s.GetParentSpanId()) == 0 {
			if s.GetName() != "beat" {
				t.Errorf("root span %q, want beat", s.GetName())
			}
			roots[string(s.GetSpanId())] = s
		}
	}
	if len(roots) != 2 {
		t.Fatalf("got %d root spans, want 2", len(roots))
	}
	children := map[int64]map[string]*tracepb.Span{}
	for _, s := range spans {
		if len(s.GetParentSpanId()) == 0 {
			continue
		}
		root, ok := roots[string(s.GetParentSpanId())]
		if !ok {
			t.Fatalf("span %q has a parent that is not a beat root", s.GetName())
		}
		if string(root.GetTraceId()) != string(s.GetTraceId()) {
			t.Errorf("span %q in another trace than its root", s.GetName())
		}
		seq := attrMap(root.GetAttributes())["walprobe.beat.seq"].GetIntValue()
		if children[seq] == nil {
			children[seq] = map[string]*tracepb.Span{}
		}
		children[seq][s.GetName()] = s
	}
	for seq := int64(1); seq <= 2; seq++ {
		if len(children[seq]) != 2 || children[seq]["replica1"] == nil || children[seq]["stream"] == nil {
			t.Fatalf("beat %d children = %v, want replica1 and stream", seq, children[seq])
		}
	}
	rep := children[1]["replica1"]
	if got, want := rep.GetEndTimeUnixNano(), uint64(ms(8).UnixNano()); got != want {
		t.Errorf("replica1 span ends at %d, want visibility time %d", got, want)
	}
	if got, want := rep.GetStartTimeUnixNano(), uint64(ms(0).UnixNano()); got != want {
		t.Errorf("replica1 span starts at %d, want beat sent %d", got, want)
	}
	ra := attrMap(rep.GetAttributes())
	for k, want := range map[string]any{"target": "replica1", "kind": "standby", "db.system.name": "postgresql", "server.address": "10.0.0.2"} {
		if got := ra[k].GetStringValue(); got != want {
			t.Errorf("replica1 span %s = %q, want %q", k, got, want)
		}
	}
	if got := ra["server.port"].GetIntValue(); got != 5432 {
		t.Errorf("replica1 span server.port = %d, want 5432", got)
	}
	if got := ra["walprobe.visibility.delay"].GetDoubleValue(); got != 0.006 {
		t.Errorf("replica1 delay = %g, want 0.006", got)
	}
	if got := ra["walprobe.visibility.error_bound"].GetDoubleValue(); got != 0.002 {
		t.Errorf("replica1 error bound = %g, want 0.002", got)
	}
	if _, ok := ra["walprobe.target.state"]; !ok {
		t.Errorf("replica1 span has no walprobe.target.state")
	}
	var events []string
	for _, e := range children[1]["stream"].GetEvents() {
		events = append(events, e.GetName())
	}
	if len(events) != 3 || events[0] != "commit" || events[1] != "server_sent" || events[2] != "received" {
		t.Errorf("stream events = %v, want [commit server_sent received]", events)
	}
	for _, s := range roots {
		seq := attrMap(s.GetAttributes())["walprobe.beat.seq"].GetIntValue()
		code := s.GetStatus().GetCode()
		switch seq {
		case 1:
			if code == tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("beat 1 root is an error: %s", s.GetStatus().GetMessage())
			}
			if got, want := s.GetEndTimeUnixNano(), uint64(ms(8).UnixNano()); got != want {
				t.Errorf("beat 1 root ends at %d, want last visibility %d", got, want)
			}
		case 2:
			if code != tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("beat 2 root status %v, want error", code)
			}
			if got, want := s.GetEndTimeUnixNano(), uint64(ms(100).Add(time.Second).UnixNano()); got != want {
				t.Errorf("beat 2 root ends at %d, want sent + timeout %d", got, want)
			}
		}
	}
	if got := children[2]["replica1"].GetStatus().GetCode(); got != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("beat 2 replica1 status %v, want error", got)
	}
	if got := children[2]["stream"].GetStatus().GetCode(); got == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("beat 2 stream status error, want ok")
	}
	return resAttrs
}
