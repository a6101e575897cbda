package e2e

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder captures visibilities and transitions.
type recorder struct {
	probe.NopObserver
	mu  sync.Mutex
	vis map[string][]probe.Visibility
	trs []probe.TransitionEvent
}

func (r *recorder) Visible(v probe.Visibility) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.vis == nil {
		r.vis = map[string][]probe.Visibility{}
	}
	r.vis[v.Target] = append(r.vis[v.Target], v)
}

func (r *recorder) Transition(t probe.TransitionEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trs = append(r.trs, t)
}

func (r *recorder) visible(target string) []probe.Visibility {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]probe.Visibility(nil), r.vis[target]...)
}

// running is a probe with a writer and readers on a cluster.
type running struct {
	p       *probe.Probe
	w       *heartbeat.Writer
	readers map[string]*probe.Reader
	rec     *recorder
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type targetDSN struct {
	name string
	kind probe.Kind
	dsn  string
}

// startProbe runs a writer and one reader per target until the test ends.
func startProbe(ctx context.Context, t *testing.T, primaryDSN, probeID string, interval time.Duration, targets ...targetDSN) *running {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	p := probe.New(probe.Config{ProbeID: probeID, Interval: interval}, logger)
	rec := &recorder{}
	p.Observe(rec)
	pcfg, err := pgconf.Parse("primary", primaryDSN)
	if err != nil {
		t.Fatal(err)
	}
	if err := heartbeat.Check(ctx, pcfg); err != nil {
		t.Fatal(err)
	}
	w, err := heartbeat.NewWriter(heartbeat.WriterConfig{Conn: pcfg, ProbeID: probeID, Interval: interval,
		OnBeat: p.Beat, OnMiss: p.Missed, OnConn: p.WriterConn}, logger)
	if err != nil {
		t.Fatal(err)
	}
	runs := []func(context.Context) error{w.Run, p.Run}
	readers := map[string]*probe.Reader{}
	for _, tg := range targets {
		cfg, err := pgconf.Parse(tg.name, tg.dsn)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := probe.NewReader(probe.ReaderConfig{Name: tg.name, Kind: tg.kind, Conn: cfg, ProbeID: probeID, Interval: interval}, p, logger)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, rd.Run)
		readers[tg.name] = rd
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &running{p: p, w: w, readers: readers, rec: rec, cancel: cancel}
	for _, fn := range runs {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); _ = fn(rctx) }()
	}
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() { r.cancel(); r.wg.Wait() }

func (r *running) target(t *testing.T, name string) probe.TargetSnapshot {
	t.Helper()
	for _, ts := range r.p.Snapshot().Targets {
		if ts.Name == name {
			return ts
		}
	}
	t.Fatalf("no target %q", name)
	return probe.TargetSnapshot{}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

// secs is *d in seconds, -1 when unknown.
func secs(d *time.Duration) float64 {
	if d == nil {
		return -1
	}
	return d.Seconds()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
