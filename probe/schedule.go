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
// the beat is likely to appear: around the delay recent beats showed.
//
// The dense window is as wide as the recent delays are spread, never as
// wide as they are long: a standby with a steady one-hour apply delay
// (recovery_min_apply_delay, a common disaster-recovery setup) is polled a
// few times per beat around the hour, exactly as tightly as a fast one.
// Its step grows with the spread, to maxDenseStep, so the polls per beat
// stay bounded (about four) whatever the delay. Past anything seen before
// it backs off geometrically to one poll per interval.
type schedule struct {
	maxStep time.Duration // back-off cap: one poll per interval
	// Where each recent beat became visible after its ack, as the
	// interval its bracket proves: delay ± error bound.
	early, late [8]time.Duration
	rtts        [8]time.Duration // write round trips of the same beats
	n           int              // how many recent entries are valid (≤ len(early))
	next        int
}

const (
	minDenseStep = time.Millisecond
	// maxDenseStep keeps the error bound near 4 ms plus the poll's own
	// round trip when recent delays scatter.
	maxDenseStep = 8 * time.Millisecond
	// maxSpread: a window wider than this is searched with eight polls
	// instead of a dense step.
	maxSpread = 50 * time.Millisecond
	// guardLead is how far before the window the guard poll goes: the
	// error bound of a beat caught by the window's first poll.
	guardLead = 8 * time.Millisecond
)

func newSchedule(interval time.Duration) *schedule {
	return &schedule{maxStep: max(interval, 10*time.Millisecond)}
}

// observe records one beat timed on the target: its delay, the error
// bound of that delay and its write round trip. The schedule keeps the
// whole interval the beat may have shown in, so a beat timed loosely (the
// first after a long wait) widens the next window instead of misplacing it.
func (s *schedule) observe(d, bound, rtt time.Duration) {
	s.early[s.next], s.late[s.next] = d-bound, d+bound
	s.rtts[s.next] = rtt
	s.next = (s.next + 1) % len(s.early)
	if s.n < len(s.early) {
		s.n++
	}
}

// expected returns where recent beats became visible, from the most
// precise observations only: those whose error bound is at most twice the
// best one's (or 2 ms). A loosely timed beat (the first after a long
// wait; a catch-up after an outage) says little once a tightly timed one
// exists, and would otherwise drag the window wide for the next eight
// beats. Among those, the second smallest early edge and the second
// largest late edge once there are four, so one outlier does not move or
// widen the window either. It also returns the smallest recent round trip.
func (s *schedule) expected() (lo, hi, rtt time.Duration, ok bool) {
	if s.n == 0 {
		return 0, 0, 0, false
	}
	best := s.late[0] - s.early[0]
	for i := 1; i < s.n; i++ {
		best = min(best, s.late[i]-s.early[i])
	}
	limit := max(2*best, 2*2*time.Millisecond) // widths are 2 × bound
	var e, l [len(s.early)]time.Duration
	k := 0
	for i := 0; i < s.n; i++ {
		if s.late[i]-s.early[i] <= limit {
			e[k], l[k] = s.early[i], s.late[i]
			k++
		}
	}
	es, ls := e[:k], l[:k]
	slices.Sort(es)
	slices.Sort(ls)
	lo, hi = es[0], ls[k-1]
	if k >= 4 {
		lo, hi = es[1], ls[k-2]
	}
	return lo, max(hi, lo), slices.Min(s.rtts[:s.n]), true
}

// nextPoll returns how long after the beat's ack the next poll should
// start, given how long after the ack the previous poll for this beat
// really started (prev < 0: none yet) and the beat's write round trip
// (ack − sent). Pass the real start, not the planned one: a reader that
// fell behind (a slow poll, a beat acked long ago) then backs off from
// where it is instead of polling back to back to catch up with a plan.
func (s *schedule) nextPoll(prev, rtt time.Duration) time.Duration {
	lo, hi, minRTT, _ := s.expected()
	spread := hi - lo
	step := min(max(spread/2, minDenseStep), maxDenseStep)
	if spread > maxSpread {
		// Little is known yet (the delay was just learned from one
		// loosely timed beat): spread eight polls over the whole window,
		// so the next beat is timed eight times as tightly, and the
		// window narrows to a few milliseconds within a few beats.
		step = spread / 8
	}
	// Delays count from the ack, but a beat can be visible as early as it
	// was sent: when its ack came back later than usual it shows that
	// much earlier after the ack, so the window moves back by the extra
	// round trip. Without that the first poll would already show such a
	// beat and its bracket would reach back to the previous beat's poll.
	late := max(rtt-minRTT, 0)
	start := max(lo-late, 0)
	// One guard poll shortly before the window proves the beat was not
	// visible yet then: a beat that shows earlier than the recent ones
	// (at the window's first poll) is bracketed from the guard, within a
	// few milliseconds, not from the previous beat's last poll an
	// interval ago.
	if guard := max(start-guardLead, 0); prev < 0 && start-guard >= step {
		return guard
	}
	if prev < start {
		return start
	}
	denseEnd := lo + spread + 2*step
	if prev < denseEnd {
		return prev + step
	}
	// Beyond anything seen before: back off geometrically to the cap.
	gap := min(max((prev-denseEnd)/2, step), s.maxStep)
	return prev + gap
}
