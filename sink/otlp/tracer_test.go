package otlp

import (
	"context"
	"log/slog"
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

// TestTracerSyncAttributes: a beat's trace says what its commit waited
// for, as the primary said at its ack, and each standby's sync_state.
func TestTracerSyncAttributes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	p := probe.New(probe.Config{ProbeID: "t"}, slog.New(slog.DiscardHandler))
	prio := int32(1)
	c := probe.ClassicPrimary{Replication: []probe.ReplicationRow{{ApplicationName: "standby1", State: "streaming", SyncState: "sync", SyncPriority: &prio}}}
	p.SetPrimaryClassic(c)
	wait := 300 * time.Microsecond
	p.SetSyncRep(probe.SyncRep{SynchronousCommit: "remote_apply", StandbyNames: "FIRST 1 (standby1)", Active: true, WaitsFor: []string{"standby1"}, CommitWait: &wait})
	tr, err := NewTracer(TracerConfig{Targets: []Target{{Name: "standby1", Kind: probe.KindStandby}}, MaxOpen: 1}, tp, p)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	tr.Beat(heartbeat.Beat{Seq: 1, Sent: t0, Acked: t0.Add(time.Millisecond)})
	tr.Beat(heartbeat.Beat{Seq: 2, Sent: t0.Add(time.Second), Acked: t0.Add(time.Second + time.Millisecond)}) // evicts beat 1
	got := map[string]string{}
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			got[s.Name()+" "+string(kv.Key)] = kv.Value.Emit()
		}
	}
	for k, want := range map[string]string{
		"beat walprobe.sync.synchronous_commit": "remote_apply",
		"beat walprobe.sync.standby_names":      "FIRST 1 (standby1)",
		"beat walprobe.sync.waits_for":          `["standby1"]`,
		"beat walprobe.sync.commit_wait":        "0.0003",
		"standby1 walprobe.sync.state":          "sync",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}
