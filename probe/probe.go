package probe

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
)

// Config configures a Probe.
type Config struct {
	ProbeID  string
	Interval time.Duration
	// LagThreshold: a target whose current lag reaches it is lagging.
	LagThreshold time.Duration
	// StallAfter: a target with beats outstanding that has shown none for
	// this long is stalled.
	StallAfter time.Duration
	// RingSize bounds how many recent beats are kept (memory is fixed).
	RingSize int
}

// Defaults fills zero fields.
func (c *Config) Defaults() {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.LagThreshold == 0 {
		c.LagThreshold = max(time.Second, 2*c.Interval)
	}
	if c.StallAfter == 0 {
		c.StallAfter = max(10*time.Second, 5*c.Interval)
	}
	if c.RingSize == 0 {
		c.RingSize = 4096
	}
}

// Observer receives what the probe learns. Calls are made synchronously
// from the component that learned it and must not block.
type Observer interface {
	Beat(b heartbeat.Beat)
	Missed(at time.Time, err error)
	Visible(v Visibility)
	Transition(t TransitionEvent)
	Classic(target string, kind Kind, c Classic)
	Stages(s StreamStages)
}

// NopObserver implements Observer with no-ops; embed it to implement a
// subset.
type NopObserver struct{}

func (NopObserver) Beat(heartbeat.Beat)           {}
func (NopObserver) Missed(time.Time, error)       {}
func (NopObserver) Visible(Visibility)            {}
func (NopObserver) Transition(TransitionEvent)    {}
func (NopObserver) Classic(string, Kind, Classic) {}
func (NopObserver) Stages(StreamStages)           {}

// Visibility is when one beat became visible on one target.
type Visibility struct {
	Target string
	Kind   Kind
	// Backend is the server behind a read endpoint that showed the beat
	// (address:port as it reported itself); empty for other kinds.
	Backend   string
	Beat      heartbeat.Beat
	VisibleAt time.Time // estimate: midpoint of the bracketing interval
	// Delay is VisibleAt − Beat.Acked: it is measured from the ack (the
	// moment the commit's reply reached the probe), the instant an
	// application that just committed would read. It can be negative, by
	// at most the write round trip (Beat.RTT): a standby or the stream may
	// show a commit before the primary's reply reaches the probe. Nothing
	// is ever timed before the beat was sent. Delay ± ErrorBound is the
	// interval the instant lies in.
	Delay      time.Duration
	ErrorBound time.Duration // half the bracketing interval
}

// TransitionEvent is one change of a target's state.
type TransitionEvent struct {
	Target string
	Kind   Kind
	From   State
	To     State
	Event  Event
	Reason string
	At     time.Time
}

// StreamStages splits one beat's trip to the logical stream. The type lives
// in heartbeat so that walstream fills it without importing probe.
type StreamStages = heartbeat.StreamStages

// Probe is the hub that keeps per-target truth.
type Probe struct {
	cfg    Config
	logger *slog.Logger
	ring   *heartbeat.Ring
	now    func() time.Time

	mu        sync.Mutex // guards the fields below
	targets   map[string]*Target
	observers []Observer
	beatCh    chan struct{} // closed and replaced on every beat
	missed    int64
	beats     int64
	lastMiss  time.Time
	missErr   string
	writerUp  bool
	writerErr string
	// conflictErr is the writer's report that another probe shares the
	// heartbeat row; empty when none is seen.
	conflictErr string
	// outageSince is the first missed beat since the last acked one; zero
	// while beats are being written.
	outageSince    time.Time
	primaryClassic *ClassicPrimary
	syncRep        *SyncRep
}

// New returns a Probe.
func New(cfg Config, logger *slog.Logger) *Probe {
	cfg.Defaults()
	return &Probe{
		cfg:     cfg,
		logger:  logger.With("component", "probe"),
		ring:    heartbeat.NewRing(cfg.RingSize),
		now:     time.Now,
		targets: map[string]*Target{},
		beatCh:  make(chan struct{}),
	}
}

// NewForTest is New on the clock now instead of time.Now, so a test in
// another package (a golden /v1/state) gets the same snapshot every run.
func NewForTest(cfg Config, logger *slog.Logger, now func() time.Time) *Probe {
	p := New(cfg, logger)
	p.now = now
	return p
}

// Config returns the probe's effective configuration.
func (p *Probe) Config() Config { return p.cfg }

// Ring exposes the recent beats (for LSN → time mapping).
func (p *Probe) Ring() *heartbeat.Ring { return p.ring }

// Observe adds an observer. Call before Run.
func (p *Probe) Observe(o Observer) {
	p.mu.Lock()
	p.observers = append(p.observers, o)
	p.mu.Unlock()
}

func (p *Probe) each(fn func(Observer)) {
	p.mu.Lock()
	obs := p.observers
	p.mu.Unlock()
	for _, o := range obs {
		fn(o)
	}
}

// Beat records a successful heartbeat write and wakes the readers. A beat
// that says earlier beats were lost in a failover (Beat.Lost) first takes
// them out of every target's reckoning: they are counted as lost, never
// timed, and never hold a lag up.
func (p *Probe) Beat(b heartbeat.Beat) {
	if b.Lost > 0 {
		from, to := b.LostRange()
		p.ring.MarkLost(from, to)
		p.mu.Lock()
		ts := p.targetsLocked()
		p.mu.Unlock()
		for _, t := range ts {
			t.lost(from, to)
		}
		p.logger.Warn("beats lost in a failover: the new primary never had them", "first", from+1, "last", to)
	}
	p.ring.Push(b)
	p.mu.Lock()
	p.beats++
	p.outageSince = time.Time{}
	close(p.beatCh)
	p.beatCh = make(chan struct{})
	ts := p.targetsLocked()
	p.mu.Unlock()
	for _, t := range ts {
		t.acked(b)
	}
	p.each(func(o Observer) { o.Beat(b) })
}

// Missed records an interval in which no beat could be written.
func (p *Probe) Missed(at time.Time, err error) {
	p.mu.Lock()
	p.missed++
	p.lastMiss = at
	if p.outageSince.IsZero() {
		p.outageSince = at
	}
	p.missErr = err.Error()
	p.mu.Unlock()
	p.each(func(o Observer) { o.Missed(at, err) })
}

// WriterConn records the writer's connection status.
func (p *Probe) WriterConn(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	was := p.writerUp
	p.writerUp = err == nil
	p.writerErr = ""
	if err != nil {
		p.writerErr = err.Error()
	}
	switch {
	case err == nil && !was:
		p.logger.Info("primary connected")
	case err != nil && (was || p.missed == 0):
		p.logger.Warn("primary down: beats are counted as missed until it returns", "error", err.Error())
	}
}

// WriterConflict records that another writer shares the probe's heartbeat
// row (err != nil, a *heartbeat.ProbeIDConflictError) or no longer does
// (nil). The writer calls it once per episode, so it warns once per
// episode. The connection is unaffected: Primary.Up stays as it was.
func (p *Probe) WriterConflict(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil:
		p.conflictErr = err.Error()
		p.logger.Warn("another probe shares the heartbeat row: its beats and lags are unreliable until one changes --probe-id", "error", p.conflictErr)
	case p.conflictErr != "":
		p.conflictErr = ""
		p.logger.Info("heartbeat row no longer shared")
	}
}

// primaryErrorLocked is the writer's side's error for the API: the
// connection's first (nothing is written without it), then a shared row;
// p.mu must be held.
func (p *Probe) primaryErrorLocked() string {
	if p.writerErr != "" {
		return p.writerErr
	}
	return p.conflictErr
}

// outageAt returns when the writer stopped writing, as of now: the first
// missed beat since the last acked one, or, while the writer is stuck
// without reporting (a connect or upsert hanging on a blackholed network),
// when the beat after the newest acked one was due, once that is more
// than max(2 intervals, 1 s) ago. Zero while beats are being written.
func (p *Probe) outageAt(now time.Time) time.Time {
	p.mu.Lock()
	since := p.outageSince
	p.mu.Unlock()
	if b, ok := p.ring.Newest(); ok {
		due := b.Acked.Add(p.cfg.Interval)
		if now.Sub(due) > max(2*p.cfg.Interval, time.Second) && (since.IsZero() || due.Before(since)) {
			since = due
		}
	}
	return since
}

// targetsLocked lists the registered targets; p.mu must be held.
func (p *Probe) targetsLocked() []*Target {
	ts := make([]*Target, 0, len(p.targets))
	for _, t := range p.targets {
		ts = append(ts, t)
	}
	return ts
}

// beatSignal returns a channel closed at the next beat.
func (p *Probe) beatSignal() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.beatCh
}

// WaitBeat blocks until a beat with Seq > after has been acked, and returns
// the newest beat. It returns ctx.Err() when ctx ends first.
func (p *Probe) WaitBeat(ctx context.Context, after int64) (heartbeat.Beat, error) {
	for {
		p.mu.Lock()
		ch := p.beatCh
		p.mu.Unlock()
		if b, ok := p.ring.Newest(); ok && b.Seq > after {
			return b, nil
		}
		select {
		case <-ctx.Done():
			return heartbeat.Beat{}, ctx.Err()
		case <-ch:
		}
	}
}

// Register adds a target and returns its handle. Names must be unique.
func (p *Probe) Register(name string, kind Kind) (*Target, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := p.targets[name]; dup {
		return nil, fmt.Errorf("duplicate target name %q: give every target its own name", name)
	}
	t := &Target{name: name, kind: kind, p: p, state: StateConnecting, since: p.now(), poke: make(chan struct{}, 1)}
	p.targets[name] = t
	return t, nil
}

// Targets returns every registered target, sorted by name.
func (p *Probe) Targets() []*Target {
	p.mu.Lock()
	ts := p.targetsLocked()
	p.mu.Unlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	return ts
}

// Target returns the handle of a registered target.
func (p *Probe) Target(name string) (*Target, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.targets[name]
	return t, ok
}

// Run evaluates every target's lag and state a few times per interval
// until ctx is done.
func (p *Probe) Run(ctx context.Context) error {
	tick := time.NewTicker(min(max(p.cfg.Interval/4, 25*time.Millisecond), 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		p.mu.Lock()
		ts := p.targetsLocked()
		p.mu.Unlock()
		for _, t := range ts {
			t.evaluate()
		}
	}
}
