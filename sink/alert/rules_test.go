package alert

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/probe"
)

// recorder receives what Rules report and keeps what a transport that
// deduplicates (sink/webhook's Notify) would send: a firing alert whose
// key is not firing, a resolve of one that is.
type recorder struct {
	firing map[string]bool
	out    []Alert
}

func (r *recorder) notify(a Alert) {
	if r.firing[a.Key()] == a.Firing {
		return
	}
	r.firing[a.Key()] = a.Firing
	r.out = append(r.out, a)
}

// changes returns and forgets what was recorded since the last call.
func (r *recorder) changes() []Alert {
	out := r.out
	r.out = nil
	return out
}

func newTestRules(t *testing.T, cfg Config) (*Rules, *recorder) {
	t.Helper()
	rec := &recorder{firing: map[string]bool{}}
	cfg.Notify = rec.notify
	r, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, rec
}

func TestConfigValidate(t *testing.T) {
	nop := func(Alert) {}
	tests := []struct {
		name string
		give Config
		want []string
	}{
		{"valid", Config{LagWarning: time.Second, LagCritical: 5 * time.Second, Notify: nop}, nil},
		{"off", Config{Notify: nop}, nil},
		{"warning over critical", Config{LagWarning: 5, LagCritical: 1, Notify: nop}, []string{"lag thresholds"}},
		{"negative, no notify", Config{LagWarning: -1}, []string{"lag thresholds", "no Notify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.give.Defaults()
			err := tt.give.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want %q in it", err, w)
				}
			}
		})
	}
}

func TestTransitionAlerts(t *testing.T) {
	r, rec := newTestRules(t, Config{})
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(from, to probe.State) probe.TransitionEvent {
		return probe.TransitionEvent{Target: "r1", Kind: probe.KindStandby, From: from, To: to, Reason: "x", At: at}
	}
	tests := []struct {
		give probe.TransitionEvent
		want string // name/status queued; "" none
	}{
		{ev(probe.StateHealthy, probe.StateLagging), ""},
		{ev(probe.StateLagging, probe.StateDown), TargetDown + "/firing"},
		{ev(probe.StateDown, probe.StateDown), ""},
		{ev(probe.StateDown, probe.StateConnecting), TargetDown + "/resolved"},
		{ev(probe.StateConnecting, probe.StatePromoted), TargetPromoted + "/firing"},
		{ev(probe.StatePromoted, probe.StateDown), TargetPromoted + "/resolved," + TargetDown + "/firing"},
	}
	for _, tt := range tests {
		r.Transition(tt.give)
		var got []string
		for _, a := range rec.changes() {
			got = append(got, a.Name+"/"+a.Status())
		}
		if g := strings.Join(got, ","); g != tt.want {
			t.Errorf("Transition(%s → %s) queued %q, want %q", tt.give.From, tt.give.To, g, tt.want)
		}
	}
}

func TestEvaluateLag(t *testing.T) {
	r, rec := newTestRules(t, Config{LagWarning: time.Second, LagCritical: 5 * time.Second})
	snap := func(lag float64) probe.Snapshot {
		l := time.Duration(lag * float64(time.Second))
		return probe.Snapshot{Targets: []probe.TargetSnapshot{{Name: "r1", Kind: probe.KindStandby, Lag: &l}, {Name: "unknown"}}}
	}
	tests := []struct {
		give float64
		want string
	}{
		{0.1, ""},
		{2, "lag_warning/firing"},
		{3, ""},
		{6, "lag_critical/firing"},
		{7, ""},
		{0.2, "lag_warning/resolved,lag_critical/resolved"},
	}
	for _, tt := range tests {
		r.EvaluateLag(snap(tt.give))
		var got []string
		for _, a := range rec.changes() {
			got = append(got, a.Name+"/"+a.Status())
		}
		if g := strings.Join(got, ","); g != tt.want {
			t.Errorf("lag %vs queued %q, want %q", tt.give, g, tt.want)
		}
	}
}

// TestStreamSlotLost walks the stream target through the transitions the
// probe reports: stream_slot_lost fires only when a stream that held a
// slot goes down, once, and resolves when a new slot streams.
func TestStreamSlotLost(t *testing.T) {
	r, rec := newTestRules(t, Config{})
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(from, to probe.State, e probe.Event) probe.TransitionEvent {
		return probe.TransitionEvent{Target: "stream", Kind: probe.KindStream, From: from, To: to, Event: e, Reason: "walsender terminated", At: at}
	}
	tests := []struct {
		name string
		give probe.TransitionEvent
		want string // name/status queued; "" none
	}{
		{"never streamed: down is target_down only", ev(probe.StateConnecting, probe.StateDown, probe.EventConnLost), TargetDown + "/firing"},
		{"slot created", ev(probe.StateDown, probe.StateConnecting, probe.EventConnected), TargetDown + "/resolved"},
		{"first beat", ev(probe.StateConnecting, probe.StateHealthy, probe.EventLagOK), ""},
		{"walsender terminated", ev(probe.StateHealthy, probe.StateDown, probe.EventConnLost),
			StreamSlotLost + "/firing," + TargetDown + "/firing"},
		{"reconnect fails again", ev(probe.StateDown, probe.StateDown, probe.EventConnLost), ""},
		{"new slot streams", ev(probe.StateDown, probe.StateConnecting, probe.EventConnected),
			StreamSlotLost + "/resolved," + TargetDown + "/resolved"},
		{"lost again before its first beat", ev(probe.StateConnecting, probe.StateDown, probe.EventConnLost),
			StreamSlotLost + "/firing," + TargetDown + "/firing"},
		{"back", ev(probe.StateDown, probe.StateConnecting, probe.EventConnected),
			StreamSlotLost + "/resolved," + TargetDown + "/resolved"},
		{"stalled then lost", ev(probe.StateStalled, probe.StateDown, probe.EventConnLost),
			StreamSlotLost + "/firing," + TargetDown + "/firing"},
	}
	for _, tt := range tests {
		r.Transition(tt.give)
		var got []string
		for _, a := range rec.changes() {
			got = append(got, a.Name+"/"+a.Status())
			if a.Name == StreamSlotLost && a.Firing && !strings.Contains(a.Summary, "walsender terminated") {
				t.Errorf("%s: summary %q does not say why", tt.name, a.Summary)
			}
		}
		if g := strings.Join(got, ","); g != tt.want {
			t.Errorf("%s: Transition(%s → %s) queued %q, want %q", tt.name, tt.give.From, tt.give.To, g, tt.want)
		}
	}
	// A standby going down never fires stream_slot_lost.
	r.Transition(probe.TransitionEvent{Target: "r1", Kind: probe.KindStandby, From: probe.StateHealthy, To: probe.StateDown, At: at})
	for _, a := range rec.changes() {
		if a.Name == StreamSlotLost {
			t.Errorf("standby down queued %s", a.Name)
		}
	}
}

// fakeSource serves one snapshot.
type fakeSource struct{ snap probe.Snapshot }

func (f fakeSource) Snapshot() probe.Snapshot { return f.snap }

// TestRunEvaluatesLag: Run evaluates the thresholds from the source every
// EvalEvery and returns nil once ctx ends.
func TestRunEvaluatesLag(t *testing.T) {
	lag := 2 * time.Second
	got := make(chan Alert, 16)
	r, err := New(Config{LagWarning: time.Second, EvalEvery: time.Millisecond, Notify: func(a Alert) {
		select {
		case got <- a:
		default:
		}
	}}, fakeSource{probe.Snapshot{Targets: []probe.TargetSnapshot{{Name: "r1", Kind: probe.KindStandby, Lag: &lag}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	timeout := time.After(5 * time.Second)
wait:
	for {
		select {
		case a := <-got:
			if a.Name != LagWarning {
				continue // primary_unreachable resolves on every tick
			}
			if !a.Firing || a.Target != "r1" || a.Kind != probe.KindStandby {
				t.Errorf("lag alert = %+v, want lag_warning firing for standby r1", a)
			}
			break wait
		case <-timeout:
			t.Error("no lag_warning within 5s")
			break wait
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}
}

// While the writer cannot write, one primary_unreachable alert fires, and
// the caught-up targets (unknown, lag null) raise no lag alert; it
// resolves once beats are written again.
func TestPrimaryUnreachable(t *testing.T) {
	r, rec := newTestRules(t, Config{LagWarning: time.Second, LagCritical: 5 * time.Second})
	ub := 30 * time.Second
	zero := time.Duration(0)
	outage := probe.Snapshot{BeatsMissed: 30, Primary: probe.PrimarySnapshot{Up: false, Error: "primary (db:5432/app): connection refused"},
		Targets: []probe.TargetSnapshot{
			{Name: "r1", Kind: probe.KindStandby, State: probe.StateUnknown, LagUpperBound: &ub},
			{Name: "r2", Kind: probe.KindStandby, State: probe.StateUnknown, LagUpperBound: &ub},
		}}
	back := probe.Snapshot{BeatsMissed: 30, Primary: probe.PrimarySnapshot{Up: true},
		Targets: []probe.TargetSnapshot{{Name: "r1", Kind: probe.KindStandby, State: probe.StateHealthy, Lag: &zero}, {Name: "r2", Kind: probe.KindStandby, State: probe.StateHealthy, Lag: &zero}}}
	tests := []struct {
		give probe.Snapshot
		want string
	}{
		{outage, "primary_unreachable/firing"},
		{outage, ""},
		{back, "primary_unreachable/resolved"},
	}
	for i, tt := range tests {
		r.EvaluateLag(tt.give)
		var got []string
		for _, a := range rec.changes() {
			got = append(got, a.Name+"/"+a.Status())
			if a.Name == PrimaryUnreachable && (a.Target != "primary" || (a.Firing && !strings.Contains(a.Summary, "connection refused"))) {
				t.Errorf("alert %+v: want target primary and the writer's error in the summary", a)
			}
		}
		if g := strings.Join(got, ","); g != tt.want {
			t.Errorf("step %d queued %q, want %q", i, g, tt.want)
		}
	}
}
