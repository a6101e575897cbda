package slo

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/alert"
)

// fakeSource serves a snapshot whose lags the test sets.
type fakeSource struct {
	mu   sync.Mutex
	snap probe.Snapshot
}

func (f *fakeSource) set(name string, kind probe.Kind, lag time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := lag
	for i := range f.snap.Targets {
		if f.snap.Targets[i].Name == name {
			f.snap.Targets[i].Lag = &l
			return
		}
	}
	f.snap.Targets = append(f.snap.Targets, probe.TargetSnapshot{Name: name, Kind: kind, Lag: &l})
}

func (f *fakeSource) Snapshot() probe.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.snap
	s.Targets = append([]probe.TargetSnapshot(nil), f.snap.Targets...)
	return s
}

func newTestSLO(t *testing.T, src Source, mp metric.MeterProvider, clock *time.Time, onAlert func(alert.Alert)) *SLO {
	t.Helper()
	s, err := New(Config{
		Objectives: []Objective{{Objective: 0.999, Threshold: 500 * time.Millisecond}},
		OnAlert:    onAlert,
	}, src, mp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return *clock }
	return s
}

func TestBurnAlertFiresAndResolves(t *testing.T) {
	const interval = time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := t0
	src := &fakeSource{snap: probe.Snapshot{Interval: interval}}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var alerts []alert.Alert
	s := newTestSLO(t, src, mp, &clock, func(a alert.Alert) { alerts = append(alerts, a) })

	stallAt, recoverAt, end := t0.Add(10*time.Minute), t0.Add(30*time.Minute), t0.Add(50*time.Minute)
	seq := int64(0)
	show := func(target string, now time.Time) {
		seq++
		s.Visible(probe.Visibility{Target: target, Kind: probe.KindStandby,
			Beat: heartbeat.Beat{Seq: seq, Acked: now.Add(-10 * time.Millisecond)}, Delay: 10 * time.Millisecond})
	}
	for clock = t0; clock.Before(end); clock = clock.Add(interval) {
		show("healthy", clock)
		src.set("healthy", probe.KindStandby, 10*time.Millisecond)
		if clock.Before(stallAt) || !clock.Before(recoverAt) {
			show("stalled", clock)
			src.set("stalled", probe.KindStandby, 10*time.Millisecond)
		} else {
			// Stalled: the oldest beat not shown is the first one after stallAt.
			src.set("stalled", probe.KindStandby, clock.Sub(stallAt))
		}
		if clock.Sub(t0)%(10*time.Second) == 0 {
			s.Evaluate(clock)
		}
	}

	var fired, resolved *alert.Alert
	for i, a := range alerts {
		if a.Target == "healthy" {
			t.Errorf("healthy target alerted: %+v", a)
		}
		if a.Target == "stalled" && a.Name == "slo_fast_burn_1h" {
			if a.Firing && fired == nil {
				fired = &alerts[i]
			} else if !a.Firing && resolved == nil {
				resolved = &alerts[i]
			}
		}
	}
	if fired == nil {
		t.Fatalf("slo_fast_burn_1h never fired for the stalled target; alerts: %+v", alerts)
	}
	if d := fired.StartedAt.Sub(stallAt); d <= 0 || d > 5*time.Minute {
		t.Errorf("fast burn fired %s after the stall, want within the 5m short window", d)
	}
	if fired.Severity != alert.SeverityPage {
		t.Errorf("severity = %q, want %q", fired.Severity, alert.SeverityPage)
	}
	if resolved == nil {
		t.Fatalf("slo_fast_burn_1h never resolved after recovery; alerts: %+v", alerts)
	}
	// Minute buckets: the 5m window holds the current minute and the 4
	// before it, so it clears 4–5 minutes after the last bad beat.
	if d := resolved.EndedAt.Sub(recoverAt); d < 4*time.Minute || d > 5*time.Minute+10*time.Second {
		t.Errorf("fast burn resolved %s after recovery, want when the 5m window clears (4m–5m10s)", d)
	}
	n := 0
	for _, a := range alerts {
		if a.Target == "stalled" && a.Name == "slo_fast_burn_1h" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("slo_fast_burn_1h changed state %d times, want 2 (fire, resolve)", n)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = true
			if m.Name == "walprobe.slo.events" {
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					if v, _ := dp.Attributes.Value("target"); v.AsString() == "healthy" && dp.Value != int64(end.Sub(t0)/interval) {
						t.Errorf("healthy events = %d, want %d", dp.Value, end.Sub(t0)/interval)
					}
				}
			}
		}
	}
	for _, name := range []string{"walprobe.slo.events", "walprobe.slo.good_events", "walprobe.slo.burn_rate", "walprobe.slo.error_budget_remaining"} {
		if !got[name] {
			t.Errorf("metric %s not collected; got %v", name, got)
		}
	}
}

func TestMissedBeatsCountedOnce(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := t0
	src := &fakeSource{snap: probe.Snapshot{Interval: time.Second}}
	s := newTestSLO(t, src, nil, &clock, nil)
	// Stalled since t0: at t0+10.5s, beats acked t0..t0+10s are overdue: 11.
	for _, step := range []time.Duration{5 * time.Second, 10500 * time.Millisecond, 10500 * time.Millisecond} {
		clock = t0.Add(step)
		src.set("r1", probe.KindStandby, step)
		s.Evaluate(clock)
	}
	// Shown late: already counted bad, not counted again.
	s.Visible(probe.Visibility{Target: "r1", Kind: probe.KindStandby, Beat: heartbeat.Beat{Acked: t0.Add(3 * time.Second)}, Delay: 8 * time.Second})
	good, total := s.targets["r1"].minutes.sum(clock, 5*time.Minute)
	if good != 0 || total != 11 {
		t.Errorf("good, total = %d, %d, want 0, 11", good, total)
	}
}

func TestMemoryFixed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := t0
	src := &fakeSource{snap: probe.Snapshot{Interval: time.Minute}}
	s := newTestSLO(t, src, nil, &clock, nil)
	for i := 0; clock.Before(t0.Add(40 * 24 * time.Hour)); i++ {
		s.Visible(probe.Visibility{Target: "r1", Kind: probe.KindStandby, Beat: heartbeat.Beat{Acked: clock}, Delay: time.Duration(i%3) * 400 * time.Millisecond})
		if i%60 == 0 {
			src.set("r1", probe.KindStandby, 0)
			s.Evaluate(clock)
		}
		clock = clock.Add(time.Minute)
	}
	r := s.targets["r1"]
	if got, want := len(r.minutes.buckets), 360; got != want {
		t.Errorf("minute buckets = %d, want %d", got, want)
	}
	if got, want := len(r.hours.buckets), 672; got != want {
		t.Errorf("hour buckets = %d, want %d", got, want)
	}
	if len(s.targets) != 1 {
		t.Errorf("targets = %d, want 1", len(s.targets))
	}
	// 28 days of 1440 beats, a third of them bad (800ms).
	good, total := r.hours.sum(clock.Add(-time.Minute), 28*24*time.Hour)
	if total < 27*24*60 || total > 28*24*60 || good*3 < total*2-3 || good*3 > total*2+3 {
		t.Errorf("28d window good, total = %d, %d", good, total)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		give Config
		want []string // substrings of the error; none: valid
	}{
		{"valid", Config{Objectives: []Objective{{Objective: 0.999, Threshold: time.Second}}}, nil},
		{"none", Config{}, []string{"no objectives"}},
		{"all bad at once", Config{Objectives: []Objective{{Objective: 1, Threshold: 0}}, Window: time.Minute},
			[]string{"objective 1:", "threshold 0s", "window 1m0s"}},
		{"duplicate", Config{Objectives: []Objective{{Kind: "standby", Objective: .9, Threshold: 1}, {Kind: "standby", Objective: .9, Threshold: 1}}},
			[]string{"duplicate selector"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.give.Defaults()
			err := tt.give.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestObjectiveFor(t *testing.T) {
	c := Config{Objectives: []Objective{
		{Objective: 0.9, Threshold: time.Second},
		{Kind: probe.KindSubscriber, Objective: 0.99, Threshold: time.Second},
		{Target: "r1", Objective: 0.999, Threshold: time.Second},
	}}
	tests := []struct {
		give string
		kind probe.Kind
		want float64
	}{
		{"r1", probe.KindStandby, 0.999},
		{"sub", probe.KindSubscriber, 0.99},
		{"r2", probe.KindStandby, 0.9},
	}
	for _, tt := range tests {
		got, ok := c.objectiveFor(tt.give, tt.kind)
		if !ok || got.Objective != tt.want {
			t.Errorf("objectiveFor(%q, %q) = %v, %v, want %v", tt.give, tt.kind, got.Objective, ok, tt.want)
		}
	}
}

// TestPerObjectiveWindowAndLabels: each target is judged by its own
// objective and compliance window, and every SLO series names them.
func TestPerObjectiveWindowAndLabels(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := t0
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	s, err := New(Config{Objectives: []Objective{
		{Objective: 0.999, Threshold: 500 * time.Millisecond},
		{Target: "strict", Objective: 0.95, Threshold: 100 * time.Millisecond, Window: 7 * 24 * time.Hour},
	}}, nil, mp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return clock }
	// 200 ms beats: bad for strict (100 ms), good for loose (500 ms).
	for i := range 10 {
		for _, name := range []string{"strict", "loose"} {
			s.Visible(probe.Visibility{Target: name, Kind: probe.KindStandby,
				Beat: heartbeat.Beat{Seq: int64(i + 1), Acked: clock}, Delay: 200 * time.Millisecond})
		}
		clock = clock.Add(time.Second)
	}
	if got, want := len(s.targets["strict"].hours.buckets), 7*24; got != want {
		t.Errorf("strict hour buckets = %d, want %d (its own 7d window)", got, want)
	}
	if got, want := len(s.targets["loose"].hours.buckets), 28*24; got != want {
		t.Errorf("loose hour buckets = %d, want %d (the default 28d window)", got, want)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"strict": {"kind": "standby", "objective": "0.95", "threshold": "100ms", "compliance_window": "7d"},
		"loose":  {"kind": "standby", "objective": "0.999", "threshold": "500ms", "compliance_window": "28d"},
	}
	seen := map[string]bool{}
	check := func(metric string, attrs attribute.Set, value float64) {
		tv, _ := attrs.Value("target")
		name := tv.AsString()
		for k, w := range want[name] {
			if v, _ := attrs.Value(attribute.Key(k)); v.Emit() != w {
				t.Errorf("%s{target=%q} %s = %q, want %q", metric, name, k, v.Emit(), w)
			}
		}
		seen[metric+"/"+name] = true
		switch {
		case metric == "walprobe.slo.good_events" && name == "strict" && value != 0,
			metric == "walprobe.slo.good_events" && name == "loose" && value != 10,
			metric == "walprobe.slo.events" && value != 10:
			t.Errorf("%s{target=%q} = %v", metric, name, value)
		}
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					check(m.Name, dp.Attributes, float64(dp.Value))
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					check(m.Name, dp.Attributes, dp.Value)
				}
			}
		}
	}
	for _, m := range []string{"walprobe.slo.events", "walprobe.slo.good_events", "walprobe.slo.burn_rate", "walprobe.slo.error_budget_remaining"} {
		for _, name := range []string{"strict", "loose"} {
			if !seen[m+"/"+name] {
				t.Errorf("no %s series for %s", m, name)
			}
		}
	}
}
