package slo

import "time"

// bucket counts the beats of one time slot. slot is the slot's index since
// the epoch (time / width), so a stale bucket is recognised and reset
// instead of being cleared by a sweeper.
type bucket struct {
	slot        int64
	good, total int64
}

// ring is a fixed-size window of equal-width buckets. Its length never
// changes after newRing: memory is fixed however long the probe runs.
type ring struct {
	width   time.Duration
	buckets []bucket
}

func newRing(width time.Duration, n int) *ring {
	r := &ring{width: width, buckets: make([]bucket, n)}
	for i := range r.buckets {
		r.buckets[i].slot = -1
	}
	return r
}

func (r *ring) slotOf(t time.Time) int64 { return t.UnixNano() / int64(r.width) }

func (r *ring) add(t time.Time, good bool, n int64) {
	s := r.slotOf(t)
	b := &r.buckets[int(s%int64(len(r.buckets)))]
	if b.slot != s {
		*b = bucket{slot: s}
	}
	b.total += n
	if good {
		b.good += n
	}
}

// sum returns the counts of the window of length d ending at now, in whole
// buckets (the current, partial bucket included).
func (r *ring) sum(now time.Time, d time.Duration) (good, total int64) {
	n := int64(d / r.width)
	n = min(max(n, 1), int64(len(r.buckets)))
	cur := r.slotOf(now)
	for s := cur - n + 1; s <= cur; s++ {
		if s < 0 {
			continue
		}
		b := r.buckets[int(s%int64(len(r.buckets)))]
		if b.slot == s {
			good += b.good
			total += b.total
		}
	}
	return good, total
}
