// Package inproc wires walprobe's core in the test process the way
// `walprobe run` does (heartbeat.Writer → probe.Probe ← one probe.Reader
// per target, and the logical stream when asked), for tests that need the
// probe's Go values rather than its HTTP surface. Use test/launch for the
// binary.
//
//	r := inproc.Start(ctx, t, inproc.Config{Primary: c.Primary.DSN("walprobe"), ProbeID: "x",
//		Interval: 200 * time.Millisecond, Targets: []inproc.Target{{Name: "standby1", Kind: probe.KindStandby, DSN: dsn}}})
//	fakes.WaitFor(ctx, t, 10*time.Second, "a beat on standby1", func() bool { return len(r.Recorder.VisibleOn("standby1")) > 0 })
//
// heartbeat's and walstream's own tests cannot use it (it imports them).
// It imports testing: it is a test helper, never linked into walprobe.
package inproc

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/walstream"
)

// Target is one read target.
type Target struct {
	Name string
	Kind probe.Kind // standby, subscriber or endpoint
	DSN  string
}

// Config says what to wire.
type Config struct {
	Primary  string // the writer's DSN
	ProbeID  string
	Interval time.Duration
	Targets  []Target
	// Stream adds the logical stream as target "stream" (the role needs
	// REPLICATION).
	Stream bool
	// Probe holds the probe's other settings (LagThreshold, StallAfter,
	// RingSize); ProbeID and Interval above win.
	Probe probe.Config
	// NoCheck skips heartbeat.Check on the primary before the writer
	// starts (a test that starts with the primary unreachable).
	NoCheck bool
	// Logger defaults to discarding, or to the test log under -v.
	Logger *slog.Logger
}

// Running is a wired probe. Its fields are set by New; the components run
// from Start until the test ends (or Stop).
type Running struct {
	Probe    *probe.Probe
	Writer   *heartbeat.Writer
	Readers  map[string]*probe.Reader
	Stream   *walstream.Stream // nil unless Config.Stream
	Recorder *Recorder
	Logger   *slog.Logger

	t      testing.TB
	runs   []func(context.Context) error
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Start is New then Start: the probe runs until the test ends.
func Start(ctx context.Context, t testing.TB, cfg Config) *Running {
	t.Helper()
	r := New(ctx, t, cfg)
	r.Start()
	return r
}

// New wires the components without starting them, so a test can add an
// observer or a component of its own (Go) first.
func New(ctx context.Context, t testing.TB, cfg Config) *Running {
	t.Helper()
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
	}
	pc := cfg.Probe
	pc.ProbeID, pc.Interval = cfg.ProbeID, cfg.Interval
	p := probe.New(pc, logger)
	rec := &Recorder{}
	p.Observe(rec)
	primary, err := pgconf.Parse("primary", cfg.Primary)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.NoCheck {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := heartbeat.Check(cctx, primary)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	w, err := heartbeat.NewWriter(heartbeat.WriterConfig{Conn: primary, ProbeID: cfg.ProbeID, Interval: cfg.Interval,
		OnBeat: p.Beat, OnMiss: p.Missed, OnConn: p.WriterConn, OnConflict: p.WriterConflict}, logger)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Running{Probe: p, Writer: w, Readers: map[string]*probe.Reader{}, Recorder: rec, Logger: logger,
		t: t, runs: []func(context.Context) error{w.Run, p.Run}, ctx: rctx, cancel: cancel}
	for _, tg := range cfg.Targets {
		conn, err := pgconf.Parse(tg.Name, tg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := probe.NewReader(probe.ReaderConfig{Name: tg.Name, Kind: tg.Kind, Conn: conn, ProbeID: cfg.ProbeID, Interval: cfg.Interval}, p, logger)
		if err != nil {
			t.Fatal(err)
		}
		r.Readers[tg.Name] = rd
		r.runs = append(r.runs, rd.Run)
	}
	if cfg.Stream {
		st, err := p.Register("stream", probe.KindStream)
		if err != nil {
			t.Fatal(err)
		}
		if r.Stream, err = walstream.New(walstream.Config{Conn: primary, ProbeID: cfg.ProbeID}, st, logger); err != nil {
			t.Fatal(err)
		}
		r.runs = append(r.runs, r.Stream.Run)
	}
	t.Cleanup(r.Stop)
	return r
}

// Go adds a component to run beside the others; call it before Start.
func (r *Running) Go(run func(context.Context) error) { r.runs = append(r.runs, run) }

// Start runs every component until Stop or the end of the test. A
// component that returns an error fails the test.
func (r *Running) Start() {
	for _, run := range r.runs {
		r.wg.Go(func() {
			if err := run(r.ctx); err != nil {
				r.t.Errorf("inproc: %v", err)
			}
		})
	}
}

// Stop cancels every component and waits for them; it is safe to call
// twice.
func (r *Running) Stop() { r.once.Do(func() { r.cancel(); r.wg.Wait() }) }

// Target returns the handle of the target called name.
func (r *Running) Target(name string) *probe.Target {
	r.t.Helper()
	tg, ok := r.Probe.Target(name)
	if !ok {
		r.t.Fatalf("inproc: no target %q", name)
	}
	return tg
}

// Snapshot returns name's entry in the probe's snapshot.
func (r *Running) Snapshot(name string) (probe.TargetSnapshot, bool) {
	for _, ts := range r.Probe.Snapshot().Targets {
		if ts.Name == name {
			return ts, true
		}
	}
	return probe.TargetSnapshot{}, false
}

// testWriter sends the probe's log to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
