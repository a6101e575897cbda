package history

import (
	"time"

	"github.com/walprobe/walprobe/sink"
)

// Stats summarise one quantity over a bucket, in seconds.
type Stats struct {
	Min sink.Seconds `json:"min"`
	Avg sink.Seconds `json:"avg"`
	Max sink.Seconds `json:"max"`
	N   int          `json:"n"`
}

// Bucket is one step of a downsampled history. Lag and Delay are null
// when the bucket holds no such sample: a gap, not a zero.
type Bucket struct {
	Start         time.Time     `json:"start"`
	Lag           *Stats        `json:"lag_seconds"`
	Delay         *Stats        `json:"delay_seconds"`
	MaxErrorBound *sink.Seconds `json:"max_error_bound_seconds"`
}

// acc accumulates one quantity.
type acc struct {
	min, max, sum time.Duration
	n             int
}

func (a *acc) add(d time.Duration) {
	if a.n == 0 || d < a.min {
		a.min = d
	}
	if a.n == 0 || d > a.max {
		a.max = d
	}
	a.sum += d
	a.n++
}

func (a *acc) stats() *Stats {
	if a.n == 0 {
		return nil
	}
	return &Stats{
		Min: sink.SecondsOf(a.min),
		Avg: sink.SecondsOf((a.sum / time.Duration(a.n))),
		Max: sink.SecondsOf(a.max),
		N:   a.n,
	}
}

// downsample splits [from, to) into points equal buckets and summarises
// the samples (oldest first) that fall in each. Samples outside the range
// are ignored. It is pure, so the bucketing is tested without a clock.
func downsample(samples []Sample, from, to time.Time, points int) []Bucket {
	if points <= 0 || !to.After(from) {
		return nil
	}
	span := to.Sub(from)
	step := span / time.Duration(points)
	if step <= 0 {
		step, points = 1, int(span) // fewer than one nanosecond per point
	}
	lags := make([]acc, points)
	delays := make([]acc, points)
	bounds := make([]acc, points)
	for _, s := range samples {
		if s.At.Before(from) || !s.At.Before(to) {
			continue
		}
		i := min(int(s.At.Sub(from)/step), points-1)
		if s.HasLag {
			lags[i].add(s.Lag)
		}
		if s.HasDelay {
			delays[i].add(s.Delay)
			bounds[i].add(s.ErrorBound)
		}
	}
	out := make([]Bucket, points)
	for i := range out {
		out[i] = Bucket{Start: from.Add(time.Duration(i) * step), Lag: lags[i].stats(), Delay: delays[i].stats()}
		if bounds[i].n > 0 {
			m := sink.SecondsOf(bounds[i].max)
			out[i].MaxErrorBound = &m
		}
	}
	return out
}
