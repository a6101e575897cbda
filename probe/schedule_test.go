package probe

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestScheduleFreshTargetPollsAtAck(t *testing.T) {
	s := newSchedule(time.Second)
	if got := s.nextPoll(-1, 0); got != 0 {
		t.Fatalf("first poll with no history at %v, want 0", got)
	}
	if got := s.nextPoll(0, 0); got != time.Millisecond {
		t.Fatalf("second poll at %v, want 1ms", got)
	}
}

// A beat whose ack came back late can be visible that much earlier after
// the ack: the first poll moves back by the extra round trip so it still
// misses.
func TestScheduleStartsEarlierAfterASlowAck(t *testing.T) {
	s := newSchedule(250 * time.Millisecond)
	for range 8 {
		s.observe(time.Second, 0, 300*time.Microsecond)
	}
	fast, slow := s.nextPoll(-1, 300*time.Microsecond), s.nextPoll(-1, 20*time.Millisecond)
	if got, want := fast-slow, 20*time.Millisecond-300*time.Microsecond; got != want {
		t.Fatalf("first poll after a 20ms ack is %v earlier than after a 0.3ms ack, want %v", got, want)
	}
}

// Past anything seen before, the gap grows to one interval and no more.
func TestScheduleBacksOffToOnePollPerInterval(t *testing.T) {
	s := newSchedule(time.Second)
	for range 8 {
		s.observe(10*time.Millisecond, 0, time.Millisecond)
	}
	p := s.nextPoll(-1, time.Millisecond)
	for range 200 {
		n := s.nextPoll(p, time.Millisecond)
		if n-p > time.Second {
			t.Fatalf("gap %v at %v over one interval", n-p, p)
		}
		p = n
	}
	if got := s.nextPoll(p, time.Millisecond) - p; got != time.Second {
		t.Fatalf("after a long wait the gap is %v, want one interval", got)
	}
	// A reader that fell far behind (a beat acked an hour ago) polls once
	// per interval from where it is, not back to back.
	if got := s.nextPoll(time.Hour, time.Millisecond) - time.Hour; got != time.Second {
		t.Fatalf("gap an hour after the ack is %v, want one interval", got)
	}
}

// converge is how many beats after the first timed one the schedule may
// take to narrow its window from that first, loosely timed beat.
const converge = 4

// simResult is what a simulated reader measured on one target. Steady
// state starts converge beats after the first beat was timed.
type simResult struct {
	pollsPerBeat    float64 // steady state, after the delay was learned
	learnPolls      int     // polls before the first beat was timed
	learnIntervals  float64 // intervals that took
	boundP99        time.Duration
	early, outside  int // estimates earlier than truth − bound, or outside ± bound
	timed, expected int
}

// simulate drives the schedule the way Reader.session does, against a
// target that shows beat k at sent(k) + delay + jitter (jitter uniform in
// ±jitter, deterministic seed), with beats every interval, write round
// trips of 0.8–1.6 ms and polls taking 0.3 ms (snapshot at their middle).
func simulate(delay, jitter, interval time.Duration, beats int) simResult {
	rng := rand.New(rand.NewPCG(1, uint64(delay)))
	const q = 300 * time.Microsecond
	type beat struct{ sent, acked, visible time.Duration }
	bs := make([]beat, beats+1)
	for k := 1; k <= beats; k++ {
		sent := time.Duration(k) * interval
		rtt := 800*time.Microsecond + time.Duration(rng.Int64N(int64(800*time.Microsecond)))
		j := time.Duration(0)
		if jitter > 0 {
			j = time.Duration(rng.Int64N(int64(2*jitter))) - jitter
		}
		// The commit becomes visible no earlier than half a round trip
		// after it was sent.
		bs[k] = beat{sent, sent + rtt, sent + rtt/2 + max(delay+j, 0)}
	}
	shows := func(at time.Duration) int {
		s := 0
		for k := 1; k <= beats && bs[k].visible <= at; k++ {
			s = k
		}
		return s
	}
	s := newSchedule(interval)
	var (
		res                  simResult
		now                  = bs[1].acked
		lastSeen             = 0
		prevStart            = time.Duration(-1)
		pollFor, prev        = -1, time.Duration(-1)
		polls, steadyPolls   int
		steadyFrom           = -1
		bounds               []time.Duration
		aheadLo, aheadHi     = map[int]time.Duration{}, map[int]time.Duration{}
		end                  = bs[beats].acked + delay + 10*interval
		firstTimedAt         time.Duration
		lastSeenOnFirstTimed int
	)
	for now < end && lastSeen < beats {
		// The oldest acked beat not shown yet.
		k := lastSeen + 1
		if bs[k].acked > now {
			now = bs[k].acked // idle until it is acked
			continue
		}
		if k != pollFor {
			pollFor, prev = k, -1
		}
		at := max(bs[k].acked+s.nextPoll(prev, bs[k].acked-bs[k].sent), now)
		prev = at - bs[k].acked
		polls++
		if steadyFrom >= 0 && k > steadyFrom+converge {
			steadyPolls++
		}
		seen := shows(at + q/2)
		done := at + q
		lower := prevStart
		if lower < 0 {
			// The first poll only places the target (Target.Seen).
			lastSeen, prevStart, now = seen, at, done
			continue
		}
		for b := lastSeen + 1; b <= seen; b++ {
			lo, hi := lower, done
			if l, ok := aheadLo[b]; ok {
				lo, hi = l, aheadHi[b]
			}
			if bs[b].acked > done {
				// Shown before its ack reached the probe: it and every
				// later beat this poll showed keep this poll's bracket
				// (Target.ahead), and are timed once acked.
				for a := b; a <= seen; a++ {
					if _, ok := aheadLo[a]; !ok {
						aheadLo[a], aheadHi[a] = lower, done
					}
				}
				seen = b - 1
				break
			}
			lo = max(lo, bs[b].sent)
			half := (hi - lo) / 2
			est := lo + half
			if est+half < bs[b].visible || est-half > bs[b].visible {
				res.outside++
			}
			if est+half < bs[b].visible {
				res.early++
			}
			if steadyFrom >= 0 && b > steadyFrom+converge {
				bounds = append(bounds, half)
				res.timed++
			} else if steadyFrom < 0 && firstTimedAt == 0 {
				firstTimedAt, lastSeenOnFirstTimed = done, b
			}
			if b == seen {
				s.observe(est-bs[b].acked, half, bs[b].acked-bs[b].sent)
			}
		}
		if seen > lastSeen {
			lastSeen = seen
			if steadyFrom < 0 {
				steadyFrom = lastSeen
				res.learnPolls = polls
				res.learnIntervals = float64(firstTimedAt-bs[1].acked) / float64(interval)
			}
		}
		prevStart = at
		now = done
	}
	res.expected = beats - lastSeenOnFirstTimed
	if res.timed > 0 {
		res.pollsPerBeat = float64(steadyPolls) / float64(res.timed)
		slices.Sort(bounds)
		res.boundP99 = bounds[len(bounds)*99/100]
	}
	return res
}

// The schedule's promise, for steady delays from 0 to an hour: at most 4
// polls per beat on average, error bound at most 10 ms at p99, the truth
// inside every estimate ± bound, and while the delay is longer than
// anything seen before (the first hour of a 1 h delay), at most one poll
// per interval.
func TestScheduleCostAndBoundAnyDelay(t *testing.T) {
	tests := []struct {
		give  time.Duration
		beats int
	}{
		{0, 300},
		{time.Second, 300},
		{30 * time.Second, 300},
		{5 * time.Minute, 600},
		{time.Hour, 3900},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.give), func(t *testing.T) {
			got := simulate(tt.give, 2*time.Millisecond, time.Second, tt.beats)
			t.Logf("delay %v: %.2f polls/beat, bound p99 %v, learning %d polls over %.0f intervals, %d timed",
				tt.give, got.pollsPerBeat, got.boundP99, got.learnPolls, got.learnIntervals, got.timed)
			if got.timed < 100 {
				t.Fatalf("timed %d beats in steady state, want ≥ 100", got.timed)
			}
			if got.pollsPerBeat > 4 {
				t.Errorf("%.2f polls per beat, want ≤ 4", got.pollsPerBeat)
			}
			if got.boundP99 > 10*time.Millisecond {
				t.Errorf("error bound p99 %v, want ≤ 10ms", got.boundP99)
			}
			if got.outside > 0 {
				t.Errorf("%d estimates do not contain the true instant (%d early)", got.outside, got.early)
			}
			if limit := got.learnIntervals + 30; float64(got.learnPolls) > limit {
				t.Errorf("%d polls before the first beat showed after %.0f intervals, want ≤ one per interval", got.learnPolls, got.learnIntervals)
			}
		})
	}
}
