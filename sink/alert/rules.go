package alert

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/walprobe/walprobe/probe"
)

// Source is where Rules read targets' lag for the lag thresholds;
// *probe.Probe is one.
type Source interface {
	Snapshot() probe.Snapshot
}

// Config configures Rules.
type Config struct {
	// LagWarning and LagCritical fire lag_warning and lag_critical while a
	// target's lag is at or over them; zero disables each.
	LagWarning, LagCritical time.Duration
	// EvalEvery is how often Run evaluates lag thresholds (default 10s).
	EvalEvery time.Duration
	// Notify receives every alert the rules report (see the package doc:
	// level-triggered). It is called from the probe's observer calls and
	// from Run, and must not block.
	Notify func(Alert)
}

// Defaults fills zero fields.
func (c *Config) Defaults() {
	if c.EvalEvery == 0 {
		c.EvalEvery = 10 * time.Second
	}
}

// Validate reports every bad field at once.
func (c Config) Validate() error {
	var errs []error
	if c.LagWarning < 0 || c.LagCritical < 0 || (c.LagWarning > 0 && c.LagCritical > 0 && c.LagWarning > c.LagCritical) {
		errs = append(errs, fmt.Errorf("webhook lag thresholds: warning %s, critical %s: want 0 <= warning <= critical", c.LagWarning, c.LagCritical))
	}
	if c.EvalEvery < 0 {
		errs = append(errs, fmt.Errorf("alert eval interval %s: must be positive", c.EvalEvery))
	}
	if c.Notify == nil {
		errs = append(errs, errors.New("alert rules: no Notify: nothing would receive the alerts"))
	}
	return errors.Join(errs...)
}

// Rules turn the probe's state into alerts. It implements probe.Observer
// (Transition only) and evaluates lag thresholds from Run.
type Rules struct {
	probe.NopObserver
	cfg Config
	src Source

	mu        sync.Mutex      // guards streaming
	streaming map[string]bool // stream targets that hold a slot (see slotLost)
}

// New validates cfg and returns Rules. src may be nil: then no lag
// thresholds are evaluated.
func New(cfg Config, src Source) (*Rules, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Rules{cfg: cfg, src: src, streaming: map[string]bool{}}, nil
}

// Run evaluates the lag thresholds every EvalEvery until ctx ends, then
// returns nil.
func (r *Rules) Run(ctx context.Context) error {
	if r.src == nil || (r.cfg.LagWarning <= 0 && r.cfg.LagCritical <= 0) {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(r.cfg.EvalEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.EvaluateLag(r.src.Snapshot())
		}
	}
}

// stateAlerts are the target states that are alerts in themselves.
var stateAlerts = []struct {
	state    probe.State
	name     string
	severity string
}{
	{probe.StateDown, TargetDown, SeverityCritical},
	// A standby left recovery: a failover happened, or a split brain.
	{probe.StatePromoted, TargetPromoted, SeverityCritical},
}

// Transition fires target_down and target_promoted when a target enters
// that state and resolves them when it leaves it, and stream_slot_lost for
// the logical stream (see slotLost).
func (r *Rules) Transition(ev probe.TransitionEvent) {
	if ev.Kind == probe.KindStream {
		r.slotLost(ev)
	}
	// Resolve before firing, so promoted → down reads in order.
	for _, s := range stateAlerts {
		if ev.From == s.state && ev.To != s.state {
			r.cfg.Notify(Alert{Name: s.name, Target: ev.Target, Kind: ev.Kind, Severity: s.severity, EndedAt: ev.At,
				Summary: fmt.Sprintf("%s %s is %s again", ev.Kind, ev.Target, ev.To)})
		}
	}
	for _, s := range stateAlerts {
		if ev.To == s.state && ev.From != s.state {
			r.cfg.Notify(Alert{Name: s.name, Target: ev.Target, Kind: ev.Kind, Severity: s.severity, Firing: true, StartedAt: ev.At,
				Summary: fmt.Sprintf("%s %s is %s: %s", ev.Kind, ev.Target, s.state, ev.Reason)})
		}
	}
}

// EvaluateLag fires lag_warning and lag_critical for every target whose
// lag is at or over the threshold, and resolves them under it. A target
// whose lag is unknown keeps its alerts as they are.
//
// It also fires primary_unreachable while the writer cannot write (beats
// missed and the writer not connected, or a target whose lag is unknown)
// and resolves it when beats are written again.
func (r *Rules) EvaluateLag(s probe.Snapshot) {
	unreachable := !s.Primary.Up && s.BeatsMissed > 0
	for _, t := range s.Targets {
		if t.State == probe.StateUnknown {
			unreachable = true
		}
	}
	if unreachable {
		why := "the heartbeat writer cannot write"
		if s.Primary.Error != "" {
			why += ": " + s.Primary.Error
		}
		r.cfg.Notify(Alert{Name: PrimaryUnreachable, Target: "primary", Severity: SeverityCritical, Firing: true,
			Summary: why + "; caught-up targets' lag is unknown until beats are written again"})
	} else {
		r.cfg.Notify(Alert{Name: PrimaryUnreachable, Target: "primary", Severity: SeverityCritical,
			Summary: "heartbeats are written again"})
	}
	for _, t := range s.Targets {
		if t.Lag == nil {
			continue
		}
		lag := *t.Lag
		for _, th := range []struct {
			name      string
			severity  string
			threshold time.Duration
		}{{LagWarning, SeverityWarning, r.cfg.LagWarning}, {LagCritical, SeverityCritical, r.cfg.LagCritical}} {
			if th.threshold <= 0 {
				continue
			}
			if lag >= th.threshold {
				r.cfg.Notify(Alert{Name: th.name, Target: t.Name, Kind: t.Kind, Severity: th.severity, Firing: true,
					Summary: fmt.Sprintf("%s %s lags %s (threshold %s)", t.Kind, t.Name, lag.Round(time.Millisecond), th.threshold)})
			} else {
				r.cfg.Notify(Alert{Name: th.name, Target: t.Name, Kind: t.Kind, Severity: th.severity,
					Summary: fmt.Sprintf("%s %s lags %s, under %s", t.Kind, t.Name, lag.Round(time.Millisecond), th.threshold)})
			}
		}
	}
}

// slotLost fires stream_slot_lost when the stream target goes down after
// its slot streamed, and resolves it when the stream is back.
//
// walstream reports Connected only once its TEMPORARY slot exists and
// START_REPLICATION succeeded, and Down only when that session ends or
// cannot start; the server drops a temporary slot with its walsender. So a
// stream that leaves down (EventConnected) or reaches healthy, lagging or
// stalled holds a slot, and its next move to down means the slot is gone:
// the walsender was terminated, the slot invalidated, the primary
// restarted. A stream that never streamed (no REPLICATION, no
// publication) fires target_down only. Not caught: a slot lost in the
// first interval after startup, before the first beat moves the stream
// out of connecting (that Connected is not a state change).
func (r *Rules) slotLost(ev probe.TransitionEvent) {
	r.mu.Lock()
	had := r.streaming[ev.Target]
	switch ev.To {
	case probe.StateDown:
		delete(r.streaming, ev.Target)
	case probe.StateHealthy, probe.StateLagging, probe.StateStalled:
		r.streaming[ev.Target] = true
	case probe.StateConnecting:
		if ev.Event == probe.EventConnected {
			r.streaming[ev.Target] = true
		}
	}
	r.mu.Unlock()
	switch {
	case ev.To == probe.StateDown && had:
		r.cfg.Notify(Alert{Name: StreamSlotLost, Target: ev.Target, Kind: ev.Kind, Severity: SeverityWarning, Firing: true, StartedAt: ev.At,
			Summary: fmt.Sprintf("the logical stream lost its replication slot: %s; beats are not timed on the stream until a new slot streams", ev.Reason)})
	case ev.From == probe.StateDown && ev.To != probe.StateDown:
		// The transport ignores a resolve for an alert that is not firing.
		r.cfg.Notify(Alert{Name: StreamSlotLost, Target: ev.Target, Kind: ev.Kind, Severity: SeverityWarning, EndedAt: ev.At,
			Summary: "the logical stream streams from a new temporary slot"})
	}
}
