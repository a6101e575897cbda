package heartbeat

import (
	"sync"
	"time"
)

// Ring keeps the most recent beats in a fixed-capacity circular buffer.
// It answers "which beat has this seq" and "when did the primary's WAL pass
// this LSN". It is safe for concurrent use; mu guards every field.
type Ring struct {
	mu    sync.RWMutex
	buf   []Beat
	next  int // index of the slot the next Push writes
	count int
}

// NewRing returns a ring holding at most capacity beats (minimum 2).
func NewRing(capacity int) *Ring {
	if capacity < 2 {
		capacity = 2
	}
	return &Ring{buf: make([]Beat, capacity)}
}

// Push records b. Beats must be pushed in seq order.
func (r *Ring) Push(b Beat) {
	r.mu.Lock()
	r.buf[r.next] = b
	r.next = (r.next + 1) % len(r.buf)
	if r.count < len(r.buf) {
		r.count++
	}
	r.mu.Unlock()
}

// Len reports how many beats the ring holds.
func (r *Ring) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.count
}

// atLocked returns the i-th oldest beat held (0 = oldest).
func (r *Ring) atLocked(i int) Beat {
	start := (r.next - r.count + len(r.buf)) % len(r.buf)
	return r.buf[(start+i)%len(r.buf)]
}

// Newest returns the most recent beat.
func (r *Ring) Newest() (Beat, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.count == 0 {
		return Beat{}, false
	}
	return r.atLocked(r.count - 1), true
}

// FirstAfter returns the oldest held beat with Seq > seq: the oldest beat a
// target that has shown seq has not shown yet. Beats older than the ring's
// capacity are forgotten, so a target behind by more than the capacity gets
// the oldest held beat, which still gives a lower bound of its lag.
func (r *Ring) FirstAfter(seq int64) (Beat, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.count == 0 || r.atLocked(r.count-1).Seq <= seq {
		return Beat{}, false
	}
	lo, hi := 0, r.count-1 // the answer is in [lo, hi]
	for lo < hi {
		mid := (lo + hi) / 2
		if r.atLocked(mid).Seq > seq {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return r.atLocked(lo), true
}

// MarkLost marks every held beat with from < Seq <= to as orphaned: lost
// in a failover (see Beat.Lost). It returns how many it marked.
func (r *Ring) MarkLost(from, to int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := 0; i < r.count; i++ {
		idx := (r.next - r.count + len(r.buf) + i) % len(r.buf)
		if b := &r.buf[idx]; b.Seq > from && b.Seq <= to && !b.Orphaned {
			b.Orphaned = true
			n++
		}
	}
	return n
}

// Between calls fn for every held beat with from < Seq <= to, oldest first.
//
// Every reader calls it for every beat it times, so it binary-searches the
// first beat instead of scanning the whole ring (4,096 beats by default).
func (r *Ring) Between(from, to int64, fn func(Beat)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	lo, hi := 0, r.count // first index with Seq > from is in [lo, hi]
	for lo < hi {
		mid := (lo + hi) / 2
		if r.atLocked(mid).Seq > from {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	for i := lo; i < r.count; i++ {
		b := r.atLocked(i)
		if b.Seq > to {
			return
		}
		fn(b)
	}
}

// LSNLagAsOf is the lag of a consumer that had everything up to lsn at the
// instant at (by the probe's clock), as of that instant: 0 when lsn is at
// or past every beat acked by then, otherwise at minus the ack time of the
// oldest such beat it has not passed.
//
// Beats acked after at do not count: the position says nothing about them.
// A caught-up consumer whose last report is seconds old therefore reads 0,
// not the age of the first beat written after it reported. Below the
// oldest held beat the answer is that beat's age at at, a lower bound.
// ok is false when no held beat was acked by at: the probe knows nothing
// the consumer could have missed.
func (r *Ring) LSNLagAsOf(lsn LSN, at time.Time) (time.Duration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.count == 0 || r.atLocked(0).Acked.After(at) {
		return 0, false
	}
	// The first beat whose LSN is > lsn: the consumer has not passed it.
	lo, hi := 0, r.count // in [lo, hi]; count means none
	for lo < hi {
		mid := (lo + hi) / 2
		if r.atLocked(mid).LSN > lsn {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	// Acks follow seq order, so if this beat was acked after at, every
	// later one was too: the consumer had all beats acked by at.
	if lo == r.count || r.atLocked(lo).Acked.After(at) {
		return 0, true
	}
	return at.Sub(r.atLocked(lo).Acked), true
}
