package probe

import (
	"slices"
	"time"
)

// schedule decides when a reader polls for an outstanding beat.
//
// A read brackets the moment a beat became visible between the last poll
// that did not show it and the first that did, so the error bound is half
// the gap between those two polls. Polling constantly would keep the bound
// small but load the target; instead the schedule polls densely only where
// the beat is likely to appear: right after the ack, and around the delay
// recent beats showed (a standby with a steady 2 s apply delay is timed as
// tightly as a fast one). Past anything seen before, it backs off
// geometrically to a cap.
type schedule struct {
	step    time.Duration // dense polling step
	maxStep time.Duration // back-off cap
	recent  [8]time.Duration
	n       int // how many recent delays are valid (≤ len(recent))
	next    int
}

func newSchedule(interval time.Duration) *schedule {
	return &schedule{
		step:    time.Millisecond,
		maxStep: min(max(interval/4, 20*time.Millisecond), 250*time.Millisecond),
	}
}

// observe records one beat's delay on the target.
func (s *schedule) observe(d time.Duration) {
	s.recent[s.next] = d
	s.next = (s.next + 1) % len(s.recent)
	if s.n < len(s.recent) {
		s.n++
	}
}

// expected returns the smallest recent delay and a robust upper one: the
// second largest, so one outlier (a catch-up after an outage, a slow
// replay under load) does not widen the dense window of the next beats.
func (s *schedule) expected() (lo, hi time.Duration, ok bool) {
	if s.n == 0 {
		return 0, 0, false
	}
	var sorted [len(s.recent)]time.Duration
	copy(sorted[:], s.recent[:s.n])
	ds := sorted[:s.n]
	slices.Sort(ds)
	lo, hi = ds[0], ds[len(ds)-1]
	if len(ds) >= 4 {
		hi = ds[len(ds)-2]
	}
	return lo, hi, true
}

// nextPoll returns how long after the beat's ack the next poll should
// start, given how long after the ack the previous poll started (prev < 0:
// none yet for this beat) and the beat's write round trip (ack − sent).
func (s *schedule) nextPoll(prev, rtt time.Duration) time.Duration {
	lo, hi, ok := s.expected()
	if !ok {
		lo, hi = 0, 0
	}
	// Start a little before the earliest recent delay, so the first poll
	// misses and the bracket is tight. Delays count from the ack, but a
	// beat can be visible as early as it was sent: when its ack came back
	// late (a slow primary, a busy probe) it shows correspondingly earlier
	// after the ack, so the start moves back by the round trip. Without
	// that, the first poll would already show such a beat and its bracket
	// would reach back to the previous beat's poll.
	guard := 2*s.step + lo/200 + max(rtt, 0)
	start := max(lo-guard, 0)
	if prev < 0 {
		return start
	}
	if prev < start {
		return start
	}
	// Dense until a little past the latest recent delay.
	// The window is capped so one outlier (a catch-up after an outage)
	// does not make every later beat poll densely for seconds.
	denseEnd := min(hi, lo+50*time.Millisecond) + 10*time.Millisecond + lo/50
	if prev < denseEnd {
		return prev + s.step
	}
	// Beyond anything seen before: back off geometrically from the dense
	// window, to the cap.
	gap := min(max((prev-denseEnd)/2, s.step), s.maxStep)
	return prev + gap
}
