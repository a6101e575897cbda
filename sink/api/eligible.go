package api

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink"
)

// EligiblePattern is the route Eligible serves.
const EligiblePattern = "GET /v1/eligible"

// maxEligibleWait caps max_wait: a request holds a goroutine and pokes
// the targets while it waits.
const maxEligibleWait = 30 * time.Second

// pokeEvery is how often a waiting request asks the targets for a fresh
// poll: at most 100 polls a second per target, only while a client waits.
const pokeEvery = 10 * time.Millisecond

// EligibleTarget is one target in an /v1/eligible answer.
type EligibleTarget struct {
	Name string     `json:"name"`
	Kind probe.Kind `json:"kind"`
	// LSN is how far it had replayed when last read, PositionAge how long
	// ago that was; PositionSource is "replay" (read from the server) or
	// "beat" (the newest heartbeat it shows: subscribers).
	LSN            string        `json:"lsn,omitempty"`
	PositionAge    *sink.Seconds `json:"position_age_seconds,omitempty"`
	PositionSource string        `json:"position_source,omitempty"`
	Lag            *sink.Seconds `json:"lag_seconds,omitempty"`
}

// EligibleBody is the answer of /v1/eligible.
type EligibleBody struct {
	MinLSN  string           `json:"min_lsn,omitempty"`
	MaxLag  *sink.Seconds    `json:"max_lag_seconds,omitempty"`
	Waited  sink.Seconds     `json:"waited_seconds"`
	Targets []EligibleTarget `json:"targets"`
}

// Eligible serves GET /v1/eligible?min_lsn=LSN[&max_wait=DURATION] and
// GET /v1/eligible?max_lag=DURATION: the standbys, subscribers and read
// endpoints an application may read from.
//
// With min_lsn (what pg_current_wal_insert_lsn() returned after the
// application's commit), a target is listed once it has replayed at least
// that position (probe.Target.Position; an endpoint only when every server
// behind it has). It waits up to max_wait (default 0, at most 30 s) for at
// least one, asking the targets for fresh polls meanwhile rather than
// waiting for the beat schedule. It never lists a target early: a
// position is what the server reported, never an extrapolation. 200 with
// the list, or 503 with it empty when none got there in time.
//
// With max_lag, it lists the targets whose true lag is known and under
// max_lag, for application-side routers; both together must both hold.
// target=NAME (repeatable) restricts the answer to those targets.
func Eligible(p *probe.Probe) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var (
			minLSN  heartbeat.LSN
			hasLSN  bool
			maxLag  time.Duration
			maxWait time.Duration
			err     error
		)
		bad := func(format string, args ...any) {
			sink.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf(format, args...)})
		}
		if v := q.Get("min_lsn"); v != "" {
			if minLSN, err = heartbeat.ParseLSN(v); err != nil {
				bad("min_lsn %q: want an LSN as PostgreSQL prints it, such as 0/16B3748", v)
				return
			}
			hasLSN = true
		}
		if v := q.Get("max_lag"); v != "" {
			if maxLag, err = time.ParseDuration(v); err != nil || maxLag <= 0 {
				bad("max_lag %q: want a positive Go duration such as 500ms or 2s", v)
				return
			}
		}
		if v := q.Get("max_wait"); v != "" {
			if maxWait, err = time.ParseDuration(v); err != nil || maxWait < 0 || maxWait > maxEligibleWait {
				bad("max_wait %q: want a Go duration from 0 to %s", v, maxEligibleWait)
				return
			}
		}
		only := map[string]bool{}
		for _, name := range q["target"] {
			if _, ok := p.Target(name); !ok {
				sink.WriteJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no target named %q: see /v1/state for the names", name)})
				return
			}
			only[name] = true
		}
		if !hasLSN && maxLag == 0 {
			bad("give min_lsn (read your writes) or max_lag (a lag bound), or both")
			return
		}
		start := time.Now()
		deadline := start.Add(maxWait)
		tick := time.NewTicker(pokeEvery)
		defer tick.Stop()
		for {
			body := eligibleNow(p, only, minLSN, hasLSN, maxLag)
			if len(body.Targets) > 0 || !hasLSN || !time.Now().Before(deadline) {
				body.Waited = sink.SecondsOf(time.Since(start))
				code := http.StatusOK
				if len(body.Targets) == 0 {
					code = http.StatusServiceUnavailable
				}
				w.Header().Set("Cache-Control", "no-store")
				sink.WriteJSON(w, code, body)
				return
			}
			for _, t := range candidates(p, only) {
				t.Poke()
			}
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	})
}

// candidates are the targets an application reads from: standbys,
// subscribers and endpoints that are being measured.
func candidates(p *probe.Probe, only map[string]bool) []*probe.Target {
	var out []*probe.Target
	for _, t := range p.Targets() {
		if len(only) > 0 && !only[t.Name()] {
			continue
		}
		switch t.Kind() {
		case probe.KindStandby, probe.KindSubscriber, probe.KindEndpoint:
		default:
			continue
		}
		switch t.State() {
		case probe.StateDown, probe.StatePromoted, probe.StateConnecting:
			continue
		}
		out = append(out, t)
	}
	return out
}

// eligibleNow decides from the targets' current positions and lags.
func eligibleNow(p *probe.Probe, only map[string]bool, minLSN heartbeat.LSN, hasLSN bool, maxLag time.Duration) EligibleBody {
	body := EligibleBody{Targets: []EligibleTarget{}}
	if hasLSN {
		body.MinLSN = minLSN.String()
	}
	if maxLag > 0 {
		body.MaxLag = new(sink.SecondsOf(maxLag))
	}
	now := time.Now()
	for _, t := range candidates(p, only) {
		e := EligibleTarget{Name: t.Name(), Kind: t.Kind()}
		if hasLSN {
			pos, ok := t.Position()
			if !ok || pos.LSN < minLSN {
				continue
			}
			e.LSN, e.PositionAge, e.PositionSource = pos.LSN.String(), new(sink.SecondsOf(now.Sub(pos.At))), "replay"
			if pos.FromBeat {
				e.PositionSource = "beat"
			}
		}
		if maxLag > 0 {
			lag, ok := t.Lag()
			if !ok || lag > maxLag {
				continue
			}
			e.Lag = new(sink.SecondsOf(lag))
		}
		body.Targets = append(body.Targets, e)
	}
	sort.Slice(body.Targets, func(i, j int) bool { return body.Targets[i].Name < body.Targets[j].Name })
	return body
}
