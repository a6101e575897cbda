package api

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink"
)

// ThrottlePattern is the route Throttle serves.
const ThrottlePattern = "GET /v1/throttle"

// ThrottleBody is what the throttle answers, whatever the status.
type ThrottleBody struct {
	OK bool `json:"ok"`
	// Lag is the worst selected target's true lag; null when the verdict
	// comes from a target whose lag is unknown.
	Lag *sink.Seconds `json:"lag_seconds"`
	// Worst names the target the verdict is about: the one with the
	// largest lag, or the first one whose lag cannot be known.
	Worst  string       `json:"worst"`
	MaxLag sink.Seconds `json:"max_lag_seconds"`
	// RetryAfter repeats the Retry-After header (429 and 503).
	RetryAfter int    `json:"retry_after_seconds,omitempty"`
	Reason     string `json:"reason"`
}

// ThrottleSelection picks the targets a throttle question is about: every
// target named, plus every target of a listed kind. Empty: every standby,
// subscriber and endpoint (the stream is not where anyone reads).
type ThrottleSelection struct {
	Names []string
	Kinds []probe.Kind
}

// DefaultThrottleKinds are the kinds an empty selection means.
var DefaultThrottleKinds = []probe.Kind{probe.KindStandby, probe.KindSubscriber, probe.KindEndpoint}

// Pick returns the selected targets of ts, in ts's order. A name no target
// has is an error, and so is a selection that picks nothing: a throttle
// that watches nothing would always say go.
func (s ThrottleSelection) Pick(ts []probe.TargetSnapshot) ([]probe.TargetSnapshot, error) {
	kinds := s.Kinds
	if len(s.Names) == 0 && len(kinds) == 0 {
		kinds = DefaultThrottleKinds
	}
	for _, n := range s.Names {
		if !slices.ContainsFunc(ts, func(t probe.TargetSnapshot) bool { return t.Name == n }) {
			return nil, fmt.Errorf("no target named %q: see /v1/state for the names", n)
		}
	}
	out := make([]probe.TargetSnapshot, 0, len(ts))
	for _, t := range ts {
		if slices.Contains(s.Names, t.Name) || slices.Contains(kinds, t.Kind) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no target of kind %v is watched: name targets with target=NAME or pick another kind", kinds)
	}
	return out, nil
}

// ThrottleVerdict decides from the selected targets; it is pure so the
// rules are testable without a server, and walprobe wait uses it in
// process. It returns 200 (every lag known and ≤ maxLag), 429 (some lag
// over maxLag; Retry-After is the caller's to set) or 503 (some lag
// cannot be known, or a target has not yet shown a beat of this run). The throttle fails closed: a target that is down,
// connecting or promoted, or whose lag is unknown because the primary
// cannot be written, stops the writer — unlike the ready endpoint, which
// keeps an unknown-lag replica in service, because a read router that
// fails closed takes reads down, while a writer that waits costs only time.
func ThrottleVerdict(sel []probe.TargetSnapshot, maxLag time.Duration) (ThrottleBody, int) {
	b := ThrottleBody{MaxLag: sink.SecondsOf(maxLag)}
	var worst *probe.TargetSnapshot
	for i := range sel {
		t := &sel[i]
		var why string
		switch {
		case t.State == probe.StateDown:
			why = "is down"
			if t.LastError != "" {
				why += ": " + t.LastError
			}
		case t.State == probe.StatePromoted:
			why = "was promoted: it no longer replicates from the primary"
		case t.State == probe.StateConnecting:
			why = "is not measured yet since (re)connecting"
		case t.State == probe.StateUnknown:
			why = "has an unknown lag: the primary cannot be written"
		case t.Lag == nil:
			why = "has an unknown lag"
		case t.BeatsTimed == 0:
			// Until one beat of this run has been timed on it, the lag
			// counts only the beats written since start: a standby that
			// replays 3 s late looks 0.1 s behind in its first second.
			why = "has not shown a beat of this run yet"
		}
		if why != "" {
			b.Worst, b.Lag = t.Name, sink.SecondsPtr(t.Lag)
			b.Reason = fmt.Sprintf("%s %s (a throttle fails closed)", t.Name, why)
			return b, http.StatusServiceUnavailable
		}
		if worst == nil || *t.Lag > *worst.Lag {
			worst = t
		}
	}
	if worst == nil { // Pick never returns an empty selection
		b.Reason = "no target selected"
		return b, http.StatusServiceUnavailable
	}
	b.Worst, b.Lag = worst.Name, sink.SecondsPtr(worst.Lag)
	if *worst.Lag > maxLag {
		b.Reason = fmt.Sprintf("%s lag %.3fs > max_lag %s", worst.Name, worst.Lag.Seconds(), maxLag)
		return b, http.StatusTooManyRequests
	}
	b.OK = true
	b.Reason = fmt.Sprintf("every selected target's lag <= max_lag %s (worst %s %.3fs)", maxLag, worst.Name, worst.Lag.Seconds())
	return b, http.StatusOK
}

// Retry-After estimation. The throttle keeps, per target, a few recent
// (time, lag) samples; when the lag is falling, the time to get under
// max_lag is (lag − max_lag) / rate, the rate being how fast the lag fell
// since the oldest sample in the window.
const (
	rateWindow  = 10 * time.Second       // samples older than this are dropped
	rateSpacing = 250 * time.Millisecond // at most one sample per target this often
	rateSamples = int(rateWindow/rateSpacing) + 1
	maxRetry    = 60 * time.Second // callers ask again at least this often
)

// lagSample is one target's lag at one instant.
type lagSample struct {
	at  time.Time
	lag time.Duration
}

// retryAfter estimates when lag will be at most maxLag from samples
// (oldest first) ending at now: ceil((lag − maxLag) / rate) seconds, where
// rate is how fast the lag fell over the samples, clamped to [1 s, 60 s].
// When the lag is not falling (a cut-off standby's lag grows by one
// second per second) nothing predicts the end: the answer is fallback
// (the probe's interval, at least 1 s), so callers check back soon rather
// than sleep through the recovery.
func retryAfter(samples []lagSample, now time.Time, lag, maxLag, fallback time.Duration) time.Duration {
	fallback = max(time.Second, fallback)
	if lag <= maxLag {
		return time.Second
	}
	if len(samples) == 0 {
		return ceilSeconds(fallback)
	}
	first := samples[0]
	span := now.Sub(first.at)
	fell := first.lag - lag
	if span <= 0 || fell <= 0 {
		return ceilSeconds(fallback)
	}
	rate := float64(fell) / float64(span) // lag seconds shed per second
	eta := time.Duration(float64(lag-maxLag) / rate)
	return ceilSeconds(min(max(eta, time.Second), maxRetry))
}

func ceilSeconds(d time.Duration) time.Duration {
	return time.Duration(math.Ceil(d.Seconds())) * time.Second
}

// rates keeps the recent lag samples of every target the throttle was
// asked about.
type rates struct {
	mu      sync.Mutex // guards samples
	samples map[string][]lagSample
}

// observe records the lags of sel at now and returns the estimate for the
// target named worst (lag over maxLag).
func (r *rates) observe(sel []probe.TargetSnapshot, now time.Time, worst string, maxLag, fallback time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	retry := ceilSeconds(max(time.Second, fallback))
	for _, t := range sel {
		if t.Lag == nil {
			delete(r.samples, t.Name)
			continue
		}
		s := r.samples[t.Name]
		// Drop what fell out of the window.
		i := 0
		for i < len(s) && now.Sub(s[i].at) > rateWindow {
			i++
		}
		s = s[i:]
		if t.Name == worst {
			retry = retryAfter(s, now, *t.Lag, maxLag, fallback)
		}
		if len(s) == 0 || now.Sub(s[len(s)-1].at) >= rateSpacing {
			if len(s) == rateSamples {
				s = s[1:]
			}
			s = append(s, lagSample{at: now, lag: *t.Lag})
		}
		r.samples[t.Name] = s
	}
	return retry
}

// Throttle serves GET /v1/throttle?max_lag=DURATION[&target=NAME…][&kind=KIND…]
// for batch jobs and migrations, which ask before each chunk: 200 while
// every selected target's true lag is at most max_lag, 429 with
// Retry-After while one is over, 503 (Retry-After: the interval) while one
// cannot be measured: down, connecting, promoted, or its lag unknown
// during a primary outage. The throttle fails closed, the opposite of the
// ready endpoint: see ThrottleVerdict. 400 for a bad max_lag or kind, 404
// for a target name no target has (as the ready endpoint) or a kind no
// target has. max_lag defaults to the probe's lag threshold.
//
// It answers from the probe's in-memory snapshot, in well under a
// millisecond (BenchmarkThrottle); the catch-up rate behind Retry-After
// comes from the lags seen by earlier questions (see retryAfter).
func Throttle(p *probe.Probe) http.Handler {
	cfg := p.Config()
	r := &rates{samples: map[string][]lagSample{}}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		bad := func(code int, format string, args ...any) {
			sink.WriteJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
		}
		maxLag := cfg.LagThreshold
		if v := q.Get("max_lag"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				bad(http.StatusBadRequest, "max_lag %q: want a positive Go duration such as 500ms, 2s or 1m", v)
				return
			}
			maxLag = d
		}
		sel := ThrottleSelection{Names: q["target"]}
		for _, k := range q["kind"] {
			kind := probe.Kind(k)
			if !slices.Contains([]probe.Kind{probe.KindStandby, probe.KindSubscriber, probe.KindEndpoint, probe.KindStream}, kind) {
				bad(http.StatusBadRequest, "kind %q: want standby, subscriber, endpoint or stream", k)
				return
			}
			sel.Kinds = append(sel.Kinds, kind)
		}
		snap := p.Snapshot()
		picked, err := sel.Pick(snap.Targets)
		if err != nil {
			bad(http.StatusNotFound, "%s", err)
			return
		}
		b, code := ThrottleVerdict(picked, maxLag)
		retry := r.observe(picked, snap.At, b.Worst, maxLag, snap.Interval)
		w.Header().Set("Cache-Control", "no-store")
		if code != http.StatusOK {
			b.RetryAfter = int(retry / time.Second)
			if code == http.StatusServiceUnavailable {
				b.RetryAfter = int(ceilSeconds(max(time.Second, snap.Interval)) / time.Second)
			}
			w.Header().Set("Retry-After", strconv.Itoa(b.RetryAfter))
		}
		sink.WriteJSON(w, code, b)
	})
}
