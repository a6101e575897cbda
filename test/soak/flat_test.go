package soak

import (
	"strings"
	"testing"
	"time"
)

func TestFlat(t *testing.T) {
	series := func(n int, f func(i int) sample) []sample {
		out := make([]sample, n)
		for i := range out {
			out[i] = f(i)
			out[i].at = time.Duration(i) * 10 * time.Second
		}
		return out
	}
	const mb = 1 << 20
	base := func(i int) sample {
		return sample{goroutines: 18, heapLive: 4 * mb, rss: 30 * mb, fds: 16, conns: 5}
	}
	tests := []struct {
		name string
		give []sample
		want []string // substrings of the complaints, in order; nil for flat
	}{
		{"flat", series(60, base), nil},
		{"noise within bounds", series(60, func(i int) sample {
			s := base(i)
			s.goroutines += float64(i % 4)
			s.heapLive += float64(i%3) * 0.3 * mb
			return s
		}), nil},
		{"a goroutine per fault", series(60, func(i int) sample {
			s := base(i)
			s.goroutines += float64(i / 3)
			return s
		}), []string{"max goroutines"}},
		{"1 KiB per beat", series(60, func(i int) sample {
			s := base(i)
			s.heapLive += float64(i) * 100 * 1024 // 100 beats per 10 s sample
			return s
		}), []string{"median live heap"}},
		{"RSS doubles", series(60, func(i int) sample {
			s := base(i)
			s.rss += float64(i) * mb
			return s
		}), []string{"median RSS"}},
		{"connections pile up", series(60, func(i int) sample {
			s := base(i)
			s.conns += i / 5
			s.fds += float64(i / 5)
			return s
		}), []string{"max open files", "max server connections"}},
		{"warm-up ignored", series(60, func(i int) sample {
			s := base(i)
			if i < 2 {
				s.heapLive, s.rss = mb, 10*mb
			}
			return s
		}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := flat(tt.give, 20*time.Second)
			if len(got) != len(tt.want) {
				t.Fatalf("flat = %q, want %d complaints %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("complaint %d = %q, want it about %q", i, got[i], w)
				}
			}
		})
	}
}
