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
	// AlertStreamSlotLost fires when the logical stream loses the
	// temporary slot it was streaming from and resolves when a new slot
	// streams.
	AlertStreamSlotLost = "stream_slot_lost"
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
// that state and resolves them when it leaves it, and stream_slot_lost for
// the logical stream (see slotLost).
func (n *Notifier) Transition(ev probe.TransitionEvent) {
	if ev.Kind == probe.KindStream {
		n.slotLost(ev)
	}
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
		lag := *t.Lag
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
func (n *Notifier) slotLost(ev probe.TransitionEvent) {
	n.mu.Lock()
	had := n.streaming[ev.Target]
	switch ev.To {
	case probe.StateDown:
		delete(n.streaming, ev.Target)
	case probe.StateHealthy, probe.StateLagging, probe.StateStalled:
		n.streaming[ev.Target] = true
	case probe.StateConnecting:
		if ev.Event == probe.EventConnected {
			n.streaming[ev.Target] = true
		}
	}
	n.mu.Unlock()
	switch {
	case ev.To == probe.StateDown && had:
		n.Notify(Alert{Name: AlertStreamSlotLost, Target: ev.Target, Severity: "warning", Firing: true, StartedAt: ev.At,
			Summary: fmt.Sprintf("the logical stream lost its replication slot: %s; beats are not timed on the stream until a new slot streams", ev.Reason)})
	case ev.From == probe.StateDown && ev.To != probe.StateDown:
		// Notify ignores a resolve for an alert that is not firing.
		n.Notify(Alert{Name: AlertStreamSlotLost, Target: ev.Target, Severity: "warning", EndedAt: ev.At,
			Summary: "the logical stream streams from a new temporary slot"})
	}
}
