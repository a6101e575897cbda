package slo

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/alert"
)

// ScopeName is the instrumentation scope of the SLO instruments; it matches
// sink/metrics so every walprobe instrument shares one scope.
const ScopeName = "github.com/walprobe/walprobe"

// Source is where Evaluate reads each target's current lag;
// *probe.Probe is one.
type Source interface {
	Snapshot() probe.Snapshot
}

// rule is one multi-window multi-burn-rate alert (SRE workbook, ch. 5,
// table 5-8): it fires while both the long and the short window burn at or
// above factor. The short window makes it resolve soon after recovery.
type rule struct {
	name        string
	severity    string
	long, short time.Duration
	factor      float64
}

var rules = []rule{
	{"slo_fast_burn_1h", alert.SeverityPage, time.Hour, 5 * time.Minute, 14.4},
	{"slo_fast_burn_6h", alert.SeverityPage, 6 * time.Hour, 30 * time.Minute, 6},
	{"slo_slow_burn_1d", alert.SeverityTicket, 24 * time.Hour, 2 * time.Hour, 3},
	{"slo_slow_burn_3d", alert.SeverityTicket, 72 * time.Hour, 6 * time.Hour, 1},
}

// Windows are the burn-rate windows exported as walprobe.slo.burn_rate.
var Windows = []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 24 * time.Hour, 72 * time.Hour}

// minuteSpan is the longest window served from one-minute buckets.
const minuteSpan = 6 * time.Hour

// SLO counts good and bad beats per target and evaluates burn-rate alerts.
// It implements probe.Observer (Visible only).
type SLO struct {
	probe.NopObserver
	cfg    Config
	src    Source
	logger *slog.Logger
	now    func() time.Time

	events, good metric.Int64Counter

	mu      sync.Mutex // guards targets and everything they point to
	targets map[string]*target
}

// target is one tracked target. Its rings are allocated once.
type target struct {
	name  string
	kind  probe.Kind
	attrs metric.MeasurementOption // labels as an option
	// labels name the target and the objective judging it: target, kind,
	// objective, threshold and compliance_window, so a dashboard shows
	// which objective a burn rate is against.
	labels  []attribute.KeyValue
	obj     Objective
	window  time.Duration // obj's compliance window
	minutes *ring
	hours   *ring
	// counted is the Acked time of the newest beat already counted, good
	// or bad; beats acked at or before it are not counted again.
	counted time.Time
	firing  map[string]time.Time // rule name → when it fired
}

// New validates cfg and registers the SLO instruments on mp (nil: none).
// src may be nil; then beats that are never shown are not counted.
func New(cfg Config, src Source, mp metric.MeterProvider, logger *slog.Logger) (*SLO, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	s := &SLO{
		cfg: cfg, src: src, logger: logger.With("component", "slo"), now: time.Now,
		targets: map[string]*target{},
	}
	meter := mp.Meter(ScopeName)
	var errs []error
	var err error
	s.events, err = meter.Int64Counter("walprobe.slo.events", metric.WithDescription("Beats judged against the target's lag SLO."))
	errs = append(errs, err)
	s.good, err = meter.Int64Counter("walprobe.slo.good_events", metric.WithDescription("Beats visible on the target within the SLO threshold."))
	errs = append(errs, err)
	burn, err := meter.Float64ObservableGauge("walprobe.slo.burn_rate",
		metric.WithDescription("Error ratio over the window divided by the error budget (1 - objective); absent while the window holds no beats."))
	errs = append(errs, err)
	budget, err := meter.Float64ObservableGauge("walprobe.slo.error_budget_remaining", metric.WithUnit("1"),
		metric.WithDescription("Fraction of the error budget left over the rolling SLO window; negative when overspent."))
	errs = append(errs, err)
	for _, e := range errs {
		if e != nil {
			return nil, fmt.Errorf("register slo instruments: %w", e)
		}
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := s.now()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, t := range s.targets {
			for _, w := range Windows {
				if b, ok := t.burnLocked(now, w); ok {
					labels := append(t.labels[:len(t.labels):len(t.labels)], attribute.String("window", windowName(w)))
					o.ObserveFloat64(burn, b, metric.WithAttributes(labels...))
				}
			}
			if g, n := t.hours.sum(now, t.window); n > 0 {
				o.ObserveFloat64(budget, 1-float64(n-g)/float64(n)/(1-t.obj.Objective), t.attrs)
			}
		}
		return nil
	}, burn, budget)
	if err != nil {
		return nil, fmt.Errorf("register slo callback: %w", err)
	}
	return s, nil
}

// windowName renders a window as the label value: 5m, 1h, 1d.
func windowName(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	default:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
}

// targetLocked returns the state for a target, creating it on first sight;
// ok is false when no objective applies.
func (s *SLO) targetLocked(name string, kind probe.Kind) (*target, bool) {
	if t, ok := s.targets[name]; ok {
		return t, true
	}
	obj, ok := s.cfg.objectiveFor(name, kind)
	if !ok {
		return nil, false
	}
	window := obj.window(s.cfg.Window)
	hours := max(int((window+time.Hour-1)/time.Hour), int(72*time.Hour/time.Hour))
	labels := []attribute.KeyValue{
		attribute.String("target", name), attribute.String("kind", string(kind)),
		attribute.String("objective", strconv.FormatFloat(obj.Objective, 'g', -1, 64)),
		attribute.String("threshold", obj.Threshold.String()),
		attribute.String("compliance_window", windowName(window)),
	}
	t := &target{
		name: name, kind: kind, obj: obj, window: window, labels: labels,
		attrs:   metric.WithAttributes(labels...),
		minutes: newRing(time.Minute, int(minuteSpan/time.Minute)),
		hours:   newRing(time.Hour, hours),
		firing:  map[string]time.Time{},
	}
	s.targets[name] = t
	return t, true
}

func (t *target) addLocked(now time.Time, good bool, n int64) {
	t.minutes.add(now, good, n)
	t.hours.add(now, good, n)
}

// burnLocked is the burn rate over window w; ok is false when the window
// holds no beats (unknown, not zero).
func (t *target) burnLocked(now time.Time, w time.Duration) (float64, bool) {
	r := t.hours
	if w <= minuteSpan {
		r = t.minutes
	}
	g, n := r.sum(now, w)
	if n == 0 {
		return 0, false
	}
	return float64(n-g) / float64(n) / (1 - t.obj.Objective), true
}

// Visible counts one shown beat: good when its delay is within the
// threshold. A beat Evaluate already counted bad is skipped.
func (s *SLO) Visible(v probe.Visibility) {
	now := s.now()
	s.mu.Lock()
	t, ok := s.targetLocked(v.Target, v.Kind)
	if !ok || !v.Beat.Acked.After(t.counted) {
		s.mu.Unlock()
		return
	}
	t.counted = v.Beat.Acked
	good := v.Delay <= t.obj.Threshold
	t.addLocked(now, good, 1)
	attrs := t.attrs
	s.mu.Unlock()
	s.record(attrs, good, 1)
}

func (s *SLO) record(attrs metric.MeasurementOption, good bool, n int64) {
	ctx := context.Background()
	s.events.Add(ctx, n, attrs)
	// Add 0 for a bad beat: a target with only bad beats still has a
	// good_events series, so good/total ratios read 0, not "no data".
	var g int64
	if good {
		g = n
	}
	s.good.Add(ctx, g, attrs)
}

// Evaluate counts beats that are overdue and not shown, then fires and
// resolves burn-rate alerts, calling OnAlert for each change (outside the
// lock, in target then rule order).
func (s *SLO) Evaluate(now time.Time) {
	var snap probe.Snapshot
	if s.src != nil {
		snap = s.src.Snapshot()
	}
	interval := snap.Interval
	type bad struct {
		attrs metric.MeasurementOption
		n     int64
	}
	var bads []bad
	var alerts []alert.Alert

	s.mu.Lock()
	for _, ts := range snap.Targets {
		t, ok := s.targetLocked(ts.Name, ts.Kind)
		if !ok || ts.Lag == nil || interval <= 0 {
			continue
		}
		lag := *ts.Lag
		if lag <= t.obj.Threshold {
			continue
		}
		// The oldest beat not shown was acked lag ago; every beat from it
		// to now−Threshold, one per interval, is overdue.
		first, deadline := now.Add(-lag), now.Add(-t.obj.Threshold)
		if !t.counted.IsZero() && !first.After(t.counted) {
			first = t.counted.Add(interval)
		}
		if first.After(deadline) {
			continue
		}
		n := int64(deadline.Sub(first)/interval) + 1
		t.counted = first.Add(time.Duration(n-1) * interval)
		t.addLocked(now, false, n)
		bads = append(bads, bad{t.attrs, n})
	}
	names := make([]string, 0, len(s.targets))
	for name := range s.targets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := s.targets[name]
		for _, r := range rules {
			long, okL := t.burnLocked(now, r.long)
			short, okS := t.burnLocked(now, r.short)
			hot := okL && okS && long >= r.factor && short >= r.factor
			started, was := t.firing[r.name]
			switch {
			case hot && !was:
				t.firing[r.name] = now
				alerts = append(alerts, alert.Alert{
					Name: r.name, Target: t.name, Kind: t.kind, Severity: r.severity, Firing: true, StartedAt: now,
					Summary: fmt.Sprintf("%s burns its lag error budget at %.1fx over %s and %.1fx over %s (objective %g of beats within %s)",
						t.name, long, windowName(r.long), short, windowName(r.short), t.obj.Objective, t.obj.Threshold),
				})
			case !hot && was:
				delete(t.firing, r.name)
				alerts = append(alerts, alert.Alert{
					Name: r.name, Target: t.name, Kind: t.kind, Severity: r.severity, StartedAt: started, EndedAt: now,
					Summary: fmt.Sprintf("%s burn rate over %s is back under %.1fx", t.name, windowName(r.short), r.factor),
				})
			}
		}
	}
	s.mu.Unlock()

	for _, b := range bads {
		s.record(b.attrs, false, b.n)
	}
	for _, a := range alerts {
		state := "resolved"
		if a.Firing {
			state = "firing"
		}
		s.logger.Info("slo alert", "alert", a.Name, "target", a.Target, "severity", a.Severity, "status", state)
		if s.cfg.OnAlert != nil {
			s.cfg.OnAlert(a)
		}
	}
}

// Run evaluates every EvalEvery until ctx ends, then returns nil.
func (s *SLO) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.EvalEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.Evaluate(s.now())
		}
	}
}
