package history

import (
	"testing"
	"time"

	"github.com/walprobe/walprobe/sink"
)

func TestDownsample(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	lag := func(s, v float64) Sample {
		return Sample{At: at(s), Lag: time.Duration(v * float64(time.Second)), HasLag: true}
	}
	delay := func(s, v, eb float64) Sample {
		return Sample{At: at(s), Delay: time.Duration(v * float64(time.Second)), ErrorBound: time.Duration(eb * float64(time.Second)), HasDelay: true}
	}
	type want struct {
		lag, delay *Stats // nil: gap
		eb         *sink.Seconds
	}
	sec := func(v float64) *sink.Seconds { s := sink.Seconds(v); return &s }
	tests := []struct {
		name   string
		give   []Sample
		from   float64
		to     float64
		points int
		want   []want
	}{
		{name: "empty range gives gaps", from: 0, to: 2, points: 2, want: []want{{}, {}}},
		{
			name: "min avg max per bucket",
			give: []Sample{lag(0, 1), lag(0.5, 3), lag(1, 2), lag(1.9, 2)},
			from: 0, to: 2, points: 2,
			want: []want{{lag: &Stats{Min: 1, Avg: 2, Max: 3, N: 2}}, {lag: &Stats{Min: 2, Avg: 2, Max: 2, N: 2}}},
		},
		{
			name: "delay and error bound kept apart from lag",
			give: []Sample{lag(0.1, 0.5), delay(0.2, 0.004, 0.001), delay(0.3, 0.002, 0.003)},
			from: 0, to: 1, points: 1,
			want: []want{{lag: &Stats{Min: 0.5, Avg: 0.5, Max: 0.5, N: 1}, delay: &Stats{Min: 0.002, Avg: 0.003, Max: 0.004, N: 2}, eb: sec(0.003)}},
		},
		{
			name: "samples outside the range are dropped; to is exclusive",
			give: []Sample{lag(-1, 9), lag(0, 1), lag(3, 9)},
			from: 0, to: 3, points: 3,
			want: []want{{lag: &Stats{Min: 1, Avg: 1, Max: 1, N: 1}}, {}, {}},
		},
		{
			name: "uneven division puts the remainder in the last bucket",
			give: []Sample{lag(0.9999999995, 4)},
			from: 0, to: 1, points: 3,
			want: []want{{}, {}, {lag: &Stats{Min: 4, Avg: 4, Max: 4, N: 1}}},
		},
		{name: "no points", give: []Sample{lag(0, 1)}, from: 0, to: 1, points: 0},
		{name: "empty span", give: []Sample{lag(0, 1)}, from: 1, to: 1, points: 5},
		{
			name: "more points than nanoseconds",
			from: 0, to: 0.000000002, points: 10,
			want: []want{{}, {}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := downsample(tt.give, at(tt.from), at(tt.to), tt.points)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d buckets, want %d", len(got), len(tt.want))
			}
			for i, b := range got {
				w := tt.want[i]
				if !statsEqual(b.Lag, w.lag) {
					t.Errorf("bucket %d lag = %+v, want %+v", i, b.Lag, w.lag)
				}
				if !statsEqual(b.Delay, w.delay) {
					t.Errorf("bucket %d delay = %+v, want %+v", i, b.Delay, w.delay)
				}
				if (b.MaxErrorBound == nil) != (w.eb == nil) || (w.eb != nil && !near(float64(*b.MaxErrorBound), float64(*w.eb))) {
					t.Errorf("bucket %d error bound = %v, want %v", i, b.MaxErrorBound, w.eb)
				}
				if i > 0 && !b.Start.After(got[i-1].Start) {
					t.Errorf("bucket %d starts at %v, not after bucket %d", i, b.Start, i-1)
				}
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func statsEqual(got, want *Stats) bool {
	if got == nil || want == nil {
		return got == want
	}
	return got.N == want.N && near(float64(got.Min), float64(want.Min)) && near(float64(got.Avg), float64(want.Avg)) && near(float64(got.Max), float64(want.Max))
}

func TestRingWraps(t *testing.T) {
	r := newRing(3)
	t0 := time.Unix(0, 0)
	for i := range 5 {
		r.push(Sample{At: t0.Add(time.Duration(i) * time.Second), Lag: time.Duration(i), HasLag: true})
	}
	got := r.since(nil, t0)
	if len(got) != 3 || got[0].Lag != 2 || got[1].Lag != 3 || got[2].Lag != 4 {
		t.Errorf("since(0) = %v, want the last 3 samples (lags 2, 3, 4) oldest first", got)
	}
	if got := r.since(nil, t0.Add(4*time.Second)); len(got) != 1 || got[0].Lag != 4 {
		t.Errorf("since(4s) = %v, want one sample", got)
	}
}
