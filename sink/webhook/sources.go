package webhook

import (
	"fmt"
	"time"

	"github.com/walprobe/walprobe/probe"
)

// Alert names raised by this package.
const (
	AlertTargetDown     = "target_down"
	AlertTargetPromoted = "target_promoted"
	AlertLagWarning     = "lag_warning"
	AlertLagCritical    = "lag_critical"
)

// stateAlerts are the target states that are alerts in themselves.
var stateAlerts = []struct {
	state    probe.State
	name     string
	severity string
}{
	{probe.StateDown, AlertTargetDown, "critical"},
	// A standby left recovery: a failover happened, or a split brain.
	{probe.StatePromoted, AlertTargetPromoted, "critical"},
}

// Transition fires target_down and target_promoted when a target enters
// that state and resolves them when it leaves it.
func (n *Notifier) Transition(ev probe.TransitionEvent) {
	// Resolve before firing, so promoted → down reads in order.
	for _, s := range stateAlerts {
		if ev.From == s.state && ev.To != s.state {
			n.Notify(Alert{Name: s.name, Target: ev.Target, Severity: s.severity, EndedAt: ev.At,
				Summary: fmt.Sprintf("%s %s is %s again", ev.Kind, ev.Target, ev.To)})
		}
	}
	for _, s := range stateAlerts {
		if ev.To == s.state && ev.From != s.state {
			n.Notify(Alert{Name: s.name, Target: ev.Target, Severity: s.severity, Firing: true, StartedAt: ev.At,
				Summary: fmt.Sprintf("%s %s is %s: %s", ev.Kind, ev.Target, s.state, ev.Reason)})
		}
	}
}

// EvaluateLag fires lag_warning and lag_critical for every target whose
// lag is at or over the threshold, and resolves them under it. A target
// whose lag is unknown keeps its alerts as they are.
func (n *Notifier) EvaluateLag(s probe.Snapshot) {
	for _, t := range s.Targets {
		if t.Lag == nil {
			continue
		}
		lag := time.Duration(float64(*t.Lag) * float64(time.Second))
		for _, th := range []struct {
			name      string
			severity  string
			threshold time.Duration
		}{{AlertLagWarning, "warning", n.cfg.LagWarning}, {AlertLagCritical, "critical", n.cfg.LagCritical}} {
			if th.threshold <= 0 {
				continue
			}
			if lag >= th.threshold {
				n.Notify(Alert{Name: th.name, Target: t.Name, Severity: th.severity, Firing: true,
					Summary: fmt.Sprintf("%s %s lags %s (threshold %s)", t.Kind, t.Name, lag.Round(time.Millisecond), th.threshold)})
			} else {
				n.Notify(Alert{Name: th.name, Target: t.Name, Severity: th.severity,
					Summary: fmt.Sprintf("%s %s lags %s, under %s", t.Kind, t.Name, lag.Round(time.Millisecond), th.threshold)})
			}
		}
	}
}
