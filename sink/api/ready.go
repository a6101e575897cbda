package api

import (
	"fmt"
	"net/http"
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
	Lag    *sink.Seconds `json:"lag_seconds"`
	MaxLag sink.Seconds  `json:"max_lag_seconds"`
	Reason string        `json:"reason"`
}

// Ready serves GET /v1/targets/{name}/ready?max_lag=DURATION for load
// balancers and orchestrators: 200 while the target's true lag is known and
// below max_lag, 503 otherwise, 404 for a name no target has, 400 for a bad
// max_lag. max_lag defaults to the probe's lag threshold.
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
		b := readiness(ts, maxLag)
		code := http.StatusOK
		if !b.Ready {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		sink.WriteJSON(w, code, b)
	})
}

// readiness decides from one target snapshot; it is pure so the rules are
// testable without a server.
func readiness(ts probe.TargetSnapshot, maxLag time.Duration) ReadyBody {
	b := ReadyBody{Target: ts.Name, State: ts.State, Lag: sink.SecondsPtr(ts.Lag), MaxLag: sink.SecondsOf(maxLag)}
	switch {
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
