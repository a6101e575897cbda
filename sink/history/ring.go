package history

import "time"

// Sample is one observation of a target. A lag sample comes from the
// sampler every interval; a delay sample from a timed beat. Either part may
// be absent.
type Sample struct {
	At         time.Time
	Lag        time.Duration
	HasLag     bool
	Delay      time.Duration
	ErrorBound time.Duration
	HasDelay   bool
}

// ring is a fixed-size buffer of samples, oldest overwritten. Not safe for
// concurrent use: History's mutex guards it.
type ring struct {
	buf  []Sample
	next int // where the next sample goes
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]Sample, n)} }

func (r *ring) push(s Sample) {
	r.buf[r.next] = s
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// since appends the samples at or after t, oldest first, to dst.
func (r *ring) since(dst []Sample, t time.Time) []Sample {
	if r.full {
		for _, s := range r.buf[r.next:] {
			if !s.At.Before(t) {
				dst = append(dst, s)
			}
		}
	}
	for _, s := range r.buf[:r.next] {
		if !s.At.Before(t) {
			dst = append(dst, s)
		}
	}
	return dst
}
