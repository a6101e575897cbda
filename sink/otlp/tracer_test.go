package otlp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
)

// TestTracerBounded keeps MaxOpen beats at most: with no target ever
// showing one, older beats are ended early as errors.
func TestTracerBounded(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tr, err := NewTracer(TracerConfig{Targets: []Target{{Name: "r1", Kind: probe.KindStandby}}, MaxOpen: 4}, tp, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for i := int64(1); i <= 10; i++ {
		tr.Beat(heartbeat.Beat{Seq: i, Sent: t0.Add(time.Duration(i) * time.Second)})
		tr.mu.Lock()
		n := len(tr.open)
		tr.mu.Unlock()
		if n > 4 {
			t.Fatalf("after beat %d: %d open beats, want at most 4", i, n)
		}
	}
	ended := rec.Ended()
	if got, want := len(ended), 6*2; got != want {
		t.Fatalf("%d spans ended, want %d (6 evicted beats × root + r1)", got, want)
	}
	for _, s := range ended {
		if !strings.Contains(s.Status().Description, "evicted") {
			t.Errorf("span %s status %q, want evicted", s.Name(), s.Status().Description)
		}
	}
	// Run ends the rest when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := len(rec.Ended()), 10*2; got != want {
		t.Errorf("%d spans after Run, want %d", got, want)
	}
}

func TestConnTargetNoSecrets(t *testing.T) {
	const canary = "canary-pw-7d1f"
	cfg, err := pgconn.ParseConfig("postgres://walprobe:" + canary + "@db.internal:6432/app?sslmode=disable&application_name=" + canary)
	if err != nil {
		t.Fatal(err)
	}
	tg := ConnTarget("replica1", probe.KindStandby, cfg)
	got := map[string]string{}
	for _, a := range tg.Attrs {
		got[string(a.Key)] = a.Value.Emit()
		if strings.Contains(a.Value.Emit(), canary) {
			t.Errorf("attribute %s leaks the canary", a.Key)
		}
	}
	if got["server.address"] != "db.internal" || got["server.port"] != "6432" || len(got) != 2 {
		t.Errorf("attrs = %v, want server.address=db.internal server.port=6432 only", got)
	}
}
