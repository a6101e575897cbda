package history

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink"
)

// Config configures a History.
type Config struct {
	// Capacity is how many samples each target keeps (default 3600: an
	// hour of lag samples at a 1s interval, less with beats timed too).
	Capacity int
	// Interval is how often the sampler records each target's lag
	// (default 1s).
	Interval time.Duration
}

// DefaultPoints is how many buckets /v1/history returns by default.
const DefaultPoints = 300

// maxPoints bounds a response.
const maxPoints = 10000

// History is a probe.Observer recording timed beats, plus a sampler (Run)
// recording each target's lag every interval.
type History struct {
	probe.NopObserver
	cfg Config
	p   *probe.Probe
	now func() time.Time

	mu    sync.Mutex // guards rings and the rings' contents
	rings map[string]*ring
}

// New returns a History of p's targets.
func New(cfg Config, p *probe.Probe) (*History, error) {
	if cfg.Capacity == 0 {
		cfg.Capacity = 3600
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	var errs []error
	if cfg.Capacity < 1 {
		errs = append(errs, fmt.Errorf("history capacity %d: must be at least 1", cfg.Capacity))
	}
	if cfg.Interval < 0 {
		errs = append(errs, fmt.Errorf("history interval %s: must be positive", cfg.Interval))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &History{cfg: cfg, p: p, now: time.Now, rings: map[string]*ring{}}, nil
}

func (h *History) recordLocked(target string, s Sample) {
	r, ok := h.rings[target]
	if !ok {
		r = newRing(h.cfg.Capacity)
		h.rings[target] = r
	}
	r.push(s)
}

// Record adds a sample for target.
func (h *History) Record(target string, s Sample) {
	h.mu.Lock()
	h.recordLocked(target, s)
	h.mu.Unlock()
}

// Visible implements probe.Observer: a timed beat is a delay sample.
func (h *History) Visible(v probe.Visibility) {
	h.Record(v.Target, Sample{At: v.VisibleAt, Delay: v.Delay, ErrorBound: v.ErrorBound, HasDelay: true})
}

// Run records every target's current lag each interval until ctx ends.
func (h *History) Run(ctx context.Context) error {
	tick := time.NewTicker(h.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			h.sample()
		}
	}
}

// sample records each polled target's lag; a target not polled yet has
// no lag, and gets no sample rather than a zero.
func (h *History) sample() {
	s := h.p.Snapshot()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range s.Targets {
		if t.Lag != nil {
			h.recordLocked(t.Name, Sample{At: s.At, Lag: *t.Lag, HasLag: true})
		}
	}
}

// Samples returns target's samples at or after since, oldest first.
func (h *History) Samples(target string, since time.Time) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.rings[target]
	if !ok {
		return nil
	}
	return r.since(nil, since)
}

func (h *History) known(target string) bool {
	if h.p != nil {
		if _, ok := h.p.Target(target); ok {
			return true
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.rings[target]
	return ok
}

// Response is the body of GET /v1/history.
type Response struct {
	Target  string       `json:"target"`
	From    time.Time    `json:"from"`
	To      time.Time    `json:"to"`
	Step    sink.Seconds `json:"step_seconds"`
	Buckets []Bucket     `json:"buckets"`
}

type apiError struct {
	Error string `json:"error"`
}

// ServeHTTP serves GET /v1/history?target=NAME&since=DURATION&points=N:
// the last DURATION (default: what the ring can hold) of target in N
// buckets (default 300) with min/avg/max lag and delay.
func (h *History) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	target := q.Get("target")
	var errs []error
	if target == "" {
		errs = append(errs, errors.New("target: required, e.g. ?target=replica1"))
	}
	since := time.Duration(h.cfg.Capacity) * h.cfg.Interval
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("since %q: want a positive duration such as 15m", v))
		} else {
			since = d
		}
	}
	points := DefaultPoints
	if v := q.Get("points"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPoints {
			errs = append(errs, fmt.Errorf("points %q: want 1 to %d", v, maxPoints))
		} else {
			points = n
		}
	}
	if err := errors.Join(errs...); err != nil {
		sink.WriteJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
		return
	}
	if !h.known(target) {
		sink.WriteJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("unknown target %q: see /v1/state for the names", target)})
		return
	}
	to := h.now()
	from := to.Add(-since)
	b := downsample(h.Samples(target, from), from, to, points)
	sink.WriteJSON(w, http.StatusOK, Response{Target: target, From: from, To: to, Step: sink.SecondsOf(since / time.Duration(len(b))), Buckets: b})
}
