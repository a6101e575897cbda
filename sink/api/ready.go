package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink"
)

// ReadyPattern is the route Ready serves.
const ReadyPattern = "GET /v1/targets/{name}/ready"

// ReadyBody is what the ready endpoint answers, whatever the status.
type ReadyBody struct {
	Target string      `json:"target"`
	Ready  bool        `json:"ready"`
	State  probe.State `json:"state,omitempty"`
	// Lag is the target's true lag; null while it is unknown.
	Lag *sink.Seconds `json:"lag_seconds"`
	// LagUnknown is true while the primary cannot be written and the
	// target had shown every acked beat: lag_seconds is null and
	// lag_upper_bound_seconds says how long that has lasted.
	LagUnknown    bool          `json:"lag_unknown,omitempty"`
	LagUpperBound *sink.Seconds `json:"lag_upper_bound_seconds,omitempty"`
	MaxLag        sink.Seconds  `json:"max_lag_seconds"`
	Strict        bool          `json:"strict,omitempty"`
	Reason        string        `json:"reason"`
}

// LagUnknownHeader is set to "true" on a ready answer given while the
// target's lag is unknown, so a load balancer's log shows why.
const LagUnknownHeader = "X-Walprobe-Lag-Unknown"

// Ready serves GET /v1/targets/{name}/ready?max_lag=DURATION[&strict=true]
// for load balancers and orchestrators: 200 while the target's true lag is
// known and below max_lag, 503 otherwise, 404 for a name no target has,
// 400 for a bad max_lag or strict. max_lag defaults to the probe's lag
// threshold.
//
// During a primary outage a target that had shown every acked beat and is
// itself reachable is in state unknown, and answers 200 by default (with
// lag_unknown and the X-Walprobe-Lag-Unknown header): the replicas are
// all the application has left, and taking every caught-up one out of
// service because the heartbeat writer cannot write would turn a primary
// outage into a total read outage (Patroni's replica check keeps such
// replicas in service too). strict=true answers 503 whenever the lag is
// unknown, for callers that must never read possibly stale data.
//
// It answers from the lag (the age of the oldest beat the target has not
// shown), not from the state: the state changes on the probe's evaluation
// tick and its threshold is fixed, while each caller picks its own bound.
// Down, promoted and connecting targets are never ready: their lag is
// either unknown or no longer means replication from this primary.
func Ready(p *probe.Probe) http.Handler {
	def := p.Config().LagThreshold
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		maxLag := def
		if v := r.URL.Query().Get("max_lag"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				sink.WriteJSON(w, http.StatusBadRequest, map[string]string{
					"error": fmt.Sprintf("max_lag %q: want a positive Go duration such as 500ms, 2s or 1m", v),
				})
				return
			}
			maxLag = d
		}
		strict := false
		if v := r.URL.Query().Get("strict"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				sink.WriteJSON(w, http.StatusBadRequest, map[string]string{
					"error": fmt.Sprintf("strict %q: want true or false", v),
				})
				return
			}
			strict = b
		}
		if _, ok := p.Target(name); !ok {
			sink.WriteJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no target named %q: see /v1/state for the names", name)})
			return
		}
		var ts probe.TargetSnapshot
		for _, t := range p.Snapshot().Targets {
			if t.Name == name {
				ts = t
				break
			}
		}
		b := readiness(ts, maxLag, strict)
		code := http.StatusOK
		if !b.Ready {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		if b.LagUnknown {
			w.Header().Set(LagUnknownHeader, "true")
		}
		sink.WriteJSON(w, code, b)
	})
}

// readiness decides from one target snapshot; it is pure so the rules are
// testable without a server.
func readiness(ts probe.TargetSnapshot, maxLag time.Duration, strict bool) ReadyBody {
	b := ReadyBody{Target: ts.Name, State: ts.State, Lag: sink.SecondsPtr(ts.Lag), MaxLag: sink.SecondsOf(maxLag), Strict: strict}
	switch {
	case ts.State == probe.StateUnknown:
		b.LagUnknown, b.LagUpperBound = true, sink.SecondsPtr(ts.LagUpperBound)
		if strict {
			b.Reason = "lag unknown: the primary cannot be written (strict: unknown is not ready)"
		} else {
			b.Ready = true
			b.Reason = "lag unknown: the primary cannot be written; this target had shown every acked beat and is reachable, so it stays in service (add strict=true to take it out)"
		}
	case ts.State == probe.StateDown:
		b.Reason = "target is down"
		if ts.LastError != "" {
			b.Reason += ": " + ts.LastError
		}
	case ts.State == probe.StatePromoted:
		b.Reason = "target was promoted: it no longer replicates from the primary"
	case ts.State == probe.StateConnecting:
		b.Reason = "target not measured yet since (re)connecting"
	case ts.Lag == nil:
		b.Reason = "lag unknown"
	case *ts.Lag >= maxLag:
		b.Reason = fmt.Sprintf("lag %.3fs >= max_lag %s", ts.Lag.Seconds(), maxLag)
	default:
		b.Ready = true
		b.Reason = fmt.Sprintf("lag %.3fs < max_lag %s", ts.Lag.Seconds(), maxLag)
	}
	return b
}
