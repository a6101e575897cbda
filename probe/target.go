package probe

// target.go is one state machine and stays one file (~500 lines): a
// target's position, brackets, pending beat, lag and state change together
// under t.mu, and splitting them would split that lock's invariants.

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
)

// Target is the handle through which a reader or the stream reports what
// one target shows. It is safe for concurrent use; mu guards every field
// below it.
type Target struct {
	name string
	kind Kind
	p    *Probe

	mu          sync.Mutex
	state       State
	since       time.Time // when state was entered
	reason      string
	known       bool  // lastSeen is meaningful
	lastSeen    int64 // highest seq the target has shown
	lastSeenAt  time.Time
	lastVis     *Visibility
	classic     *Classic
	visible     int64 // beats timed on this target
	transitions int64
	lastErr     string
	pollErrors  int64 // polls that failed on a reachable target
	beatsLost   int64 // beats lost in a failover before the target showed them
	// pendSeq and pendAck are the oldest acked beat the target has not
	// shown (pendSeq 0: none). They are kept here, not looked up in the
	// ring, so the lag keeps growing for as long as a fault lasts: the
	// ring forgets a beat after RingSize intervals, a weekend-long fault
	// does not end then.
	pendSeq int64
	pendAck time.Time
	// ahead holds polls that showed a seq the ring does not hold yet: a
	// target can show a beat before the writer's ack reaches the probe.
	// Each keeps its bracket so the beat is timed once its ack lands.
	ahead []aheadPoll
	// heldStages are stream stages of beats not acked yet (≤ maxAhead).
	heldStages []StreamStages
	// dropped counts observations that cannot be true, by reason.
	dropped map[DropReason]int64

	// Read endpoints: a read address (a pooler, a load balancer, a DNS
	// name) can hand each query or connection to a different server.
	// backends holds one child Target per server that answered, each
	// with its own position, bracket and lag; the endpoint's lag is the
	// worst recent one (see backend.go). Nil for other kinds.
	backends map[string]*backend
	// parent and server are set on such a child.
	parent *Target
	server string
	// pos is the replay position the latest poll read (eligible.go).
	pos Position
	// poke wakes the readers for a poll now (eligible.go); buffered 1.
	poke chan struct{}
}

// DropReason says why an observation was dropped instead of timed.
type DropReason string

// Drop reasons.
const (
	// DropBeforeSent: a poll that ended before the beat was even sent
	// showed it; the seq was reused (another writer with the same probe
	// id, a failover to a server with other history).
	DropBeforeSent DropReason = "before_sent"
)

// DropReasons lists every reason, in the order metrics export them.
var DropReasons = []DropReason{DropBeforeSent}

// aheadPoll is a poll, bracketed by (lower, upper], that showed seq before
// the probe had the beat. Entries are in poll order, seqs increasing.
type aheadPoll struct {
	seq          int64
	lower, upper time.Time
}

// maxAhead bounds Target.ahead; past it the oldest entries are merged
// into the next one (a wider bracket, never a wrong one).
const maxAhead = 8

// Name returns the target's name.
func (t *Target) Name() string { return t.name }

// Kind returns the target's kind.
func (t *Target) Kind() Kind { return t.kind }

// LastSeen returns the highest seq the target has shown, and whether any
// poll has succeeded yet.
//
// For a read endpoint it is the position of the server that answered
// last (see LastSeenOf for one server's).
func (t *Target) LastSeen() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastSeen, t.known
}

// State returns the target's current state.
func (t *Target) State() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state
}

// Connected reports that a session to the target is up.
func (t *Target) Connected() { t.fire(EventConnected, "connected") }

// Down reports that the target cannot be reached or queried.
func (t *Target) Down(err error) {
	t.mu.Lock()
	t.lastErr = err.Error()
	t.mu.Unlock()
	t.fire(EventConnLost, err.Error())
}

// PollFailed reports a poll that failed while the target stayed
// reachable (a recovery conflict cancelled it, it answered too late). It
// is evidence, not an outage: the state keeps following the lag, and the
// next poll that answers brackets every beat shown meanwhile.
func (t *Target) PollFailed(err error) {
	t.mu.Lock()
	t.lastErr = err.Error()
	t.pollErrors++
	t.mu.Unlock()
	t.p.logger.Debug("poll failed", "target", t.name, "error", err.Error())
}

// Promoted reports that a standby is no longer in recovery.
func (t *Target) Promoted() {
	t.fire(EventPromoted, "pg_is_in_recovery() is false: the standby was promoted")
}

// InRecovery reports that the target is in recovery; it moves a promoted
// target back to connecting (it was rebuilt as a standby).
func (t *Target) InRecovery() {
	if t.State() == StatePromoted {
		t.fire(EventDemoted, "back in recovery")
	}
}

// Seen reports that a poll whose result was taken inside (lower, upper]
// showed seq, and that the previous poll (starting at lower) did not.
// Every beat newer than the last seen and up to seq becomes visible: WAL
// replay and logical apply keep commit order, so showing seq means showing
// every beat before it.
//
// A target may show a beat before the writer's ack for it reaches the
// probe (asynchronous replication, a slow ack under load). Such a poll is
// remembered with its bracket, and the beat is timed from it once the ack
// lands (see TimeAhead): never dropped, never timed from a later poll.
//
// Pass lower = upper for an exact observation (the logical stream). It
// returns the newest beat's visibility when any beat was newly timed.
func (t *Target) Seen(seq int64, lower, upper time.Time) (Visibility, bool) {
	t.mu.Lock()
	if t.state != StateDown {
		t.lastErr = "" // a poll answered: the last failure is over
	}
	if !t.known {
		// The first poll only tells where the target is: beats it showed
		// before the probe watched it cannot be timed.
		t.known, t.lastSeen, t.lastSeenAt = true, seq, upper
		t.ahead = t.ahead[:0]
		if t.pendSeq == 0 || seq >= t.pendSeq {
			// Otherwise the target still lacks the beat it lacked before
			// the reconnect: its lag keeps counting from that beat.
			t.pendingLocked()
		}
		t.mu.Unlock()
		t.evaluate()
		return Visibility{}, false
	}
	if seq <= t.lastSeen {
		t.mu.Unlock()
		return Visibility{}, false
	}
	if newest, ok := t.p.ring.Newest(); !ok || seq > newest.Seq {
		if n := len(t.ahead); n == 0 || seq > t.ahead[n-1].seq {
			if n == maxAhead {
				// Merge the two oldest: the first poll's lower bound and
				// the second's upper bracket both their beats.
				t.ahead[1].lower = t.ahead[0].lower
				t.ahead = append(t.ahead[:0], t.ahead[1:]...)
			}
			t.ahead = append(t.ahead, aheadPoll{seq: seq, lower: lower, upper: upper})
		}
		seq = t.lastSeen
		if ok {
			seq = newest.Seq
		}
	}
	return t.timeLocked(seq, lower, upper)
}

// TimeAhead times the beats that a poll showed before their acks reached
// the probe and that the ring now holds. It reports whether any was timed.
func (t *Target) TimeAhead() bool {
	any := false
	for _, c := range t.children() {
		any = c.TimeAhead() || any
	}
	t.mu.Lock()
	if !t.known || len(t.ahead) == 0 {
		t.mu.Unlock()
		return any
	}
	newest, ok := t.p.ring.Newest()
	if !ok || newest.Seq <= t.lastSeen {
		t.mu.Unlock()
		return any
	}
	seq := min(newest.Seq, t.ahead[len(t.ahead)-1].seq)
	_, timed := t.timeLocked(seq, time.Time{}, time.Time{})
	return timed || any
}

// timeLocked times every held beat in (lastSeen, seq]: from the first
// ahead poll that showed it, else from the bracket (lower, upper]. It
// unlocks t.mu and notifies observers.
func (t *Target) timeLocked(seq int64, lower, upper time.Time) (Visibility, bool) {
	var vis []Visibility
	if seq > t.lastSeen {
		t.p.ring.Between(t.lastSeen, seq, func(b heartbeat.Beat) {
			if b.Orphaned {
				return // lost in a failover: counted, never timed
			}
			lo, hi := lower, upper
			for _, a := range t.ahead {
				if a.seq >= b.Seq {
					lo, hi = a.lower, a.upper
					break
				}
			}
			if b.Sent.After(lo) {
				lo = b.Sent // nothing is visible before it was sent
			}
			if hi.Before(lo) {
				// Shown by a poll that ended before the beat was sent:
				// not this beat. Never time it as exact.
				if t.dropped == nil {
					t.dropped = map[DropReason]int64{}
				}
				t.dropped[DropBeforeSent]++
				return
			}
			half := hi.Sub(lo) / 2
			at := lo.Add(half)
			vis = append(vis, Visibility{Target: t.name, Kind: t.kind, Backend: t.server, Beat: b, VisibleAt: at, Delay: at.Sub(b.Acked), ErrorBound: half})
		})
		k, at := 0, upper
		for k < len(t.ahead) && t.ahead[k].seq <= seq {
			if t.ahead[k].upper.After(at) {
				at = t.ahead[k].upper
			}
			k++
		}
		t.ahead = append(t.ahead[:0], t.ahead[k:]...)
		t.lastSeen = seq
		if t.pendSeq <= seq {
			t.pendingLocked()
		}
		if at.After(t.lastSeenAt) {
			t.lastSeenAt = at
		}
		if n := len(vis); n > 0 {
			t.lastVis = &vis[n-1]
			t.visible += int64(n)
		}
	}
	var stages []StreamStages
	if len(t.heldStages) > 0 {
		k := 0
		for _, st := range t.heldStages {
			if st.Seq > t.lastSeen {
				t.heldStages[k] = st
				k++
				continue
			}
			t.p.ring.Between(st.Seq-1, st.Seq, func(b heartbeat.Beat) { st.Beat = b })
			if st.Beat.Seq != 0 {
				stages = append(stages, st)
			}
		}
		t.heldStages = t.heldStages[:k]
	}
	t.mu.Unlock()
	for _, v := range vis {
		t.p.each(func(o Observer) { o.Visible(v) })
	}
	for _, st := range stages {
		t.p.each(func(o Observer) { o.Stages(st) })
	}
	t.evaluate()
	if len(vis) == 0 {
		return Visibility{}, false
	}
	return vis[len(vis)-1], true
}

// pendingLocked finds the oldest acked beat after lastSeen in the ring. A
// target that caught up only partly from further back than the ring
// reaches gets the oldest beat the ring holds: its lag is then a lower
// bound (the ring spans RingSize intervals, 68 min at the defaults).
func (t *Target) pendingLocked() {
	t.pendSeq, t.pendAck = 0, time.Time{}
	seq := t.lastSeen
	for {
		b, ok := t.p.ring.FirstAfter(seq)
		if !ok {
			return
		}
		if !b.Orphaned {
			t.pendSeq, t.pendAck = b.Seq, b.Acked
			return
		}
		seq = b.Seq // lost in a failover: it will never show
	}
}

// lost takes the beats (from, to], lost in a failover, out of the
// target's reckoning: those it had not shown count as lost.
func (t *Target) lost(from, to int64) {
	for _, c := range t.children() {
		c.lost(from, to)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := to - max(from, t.lastSeen); n > 0 && (t.known || t.lastSeen > 0) {
		t.beatsLost += n
	}
	if t.pendSeq > from && t.pendSeq <= to {
		t.pendingLocked()
	}
}

// acked tells the target that beat b was acked: it becomes the oldest
// unshown beat when the target had shown every earlier one.
// A beat the target showed before this ack (held in ahead) is timed now.
func (t *Target) acked(b heartbeat.Beat) {
	for _, c := range t.children() {
		c.acked(b)
	}
	t.mu.Lock()
	if t.pendSeq == 0 && b.Seq > t.lastSeen && (t.known || t.lastSeen > 0) {
		t.pendSeq, t.pendAck = b.Seq, b.Acked
	}
	ahead := len(t.ahead) > 0
	t.mu.Unlock()
	if ahead {
		t.TimeAhead()
	}
}

// Stages reports the logical stream's split of one beat's trip. Stages of
// a beat whose ack has not reached the probe yet are held (a few) and
// reported when the beat is timed.
func (t *Target) Stages(s StreamStages) {
	s.Target = t.name
	if s.Beat.Seq == 0 && s.Seq != 0 {
		t.p.ring.Between(s.Seq-1, s.Seq, func(b heartbeat.Beat) { s.Beat = b })
		if s.Beat.Seq == 0 {
			t.mu.Lock()
			if len(t.heldStages) == maxAhead {
				t.heldStages = append(t.heldStages[:0], t.heldStages[1:]...)
			}
			t.heldStages = append(t.heldStages, s)
			t.mu.Unlock()
			return
		}
	}
	t.p.each(func(o Observer) { o.Stages(s) })
}

// SetClassic records the latest classic numbers for the target.
func (t *Target) SetClassic(c Classic) {
	t.mu.Lock()
	t.classic = &c
	t.mu.Unlock()
	t.p.each(func(o Observer) { o.Classic(t.name, t.kind, c) })
}

// Lag returns the target's current lag: the age of the oldest acked beat
// it has not shown, growing from the first missed beat while the primary
// cannot be written. ok is false until the target has been polled once.
//
// ok is also false while the lag is unknown: the target had shown every
// acked beat and the writer cannot write, so nothing proves how fresh it
// is (see LagUpperBound).
func (t *Target) Lag() (time.Duration, bool) {
	now := t.p.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.known {
		return 0, false
	}
	lag, _, ok := t.lagLocked(now)
	return lag, ok
}

// lagLocked is the age of the oldest acked beat the target has not shown,
// and 0 when it has shown every acked beat while beats are being written.
// When it has shown every acked beat and the writer cannot write, the lag
// is unknown (ok false): it is at most the time since the writer stopped
// (bound), and could be anything below that. Never a guess: the old
// answer, the time since the first missed beat, made every caught-up
// replica look lagging during a primary outage.
func (t *Target) lagLocked(now time.Time) (lag, bound time.Duration, ok bool) {
	if t.backends != nil {
		return t.endpointLagLocked(now)
	}
	if t.pendSeq != 0 {
		return now.Sub(t.pendAck), 0, true
	}
	if outage := t.p.outageAt(now); !outage.IsZero() {
		return 0, now.Sub(outage), false
	}
	return 0, 0, true
}

// evaluate turns the current lag into a lag or progress event.
func (t *Target) evaluate() {
	t.evaluateAt(t.p.now())
}

// evaluateAt is evaluate with the clock read once by the caller, so a
// snapshot's state and lag come from the same instant.
func (t *Target) evaluateAt(now time.Time) {
	t.mu.Lock()
	st, known, seenAt := t.state, t.known, t.lastSeenAt
	lag, bound, lagKnown := t.lagLocked(now)
	t.mu.Unlock()
	if !known || st == StateDown || st == StatePromoted {
		return
	}
	switch {
	case !lagKnown:
		t.fireAt(now, EventLagUnknown, "the primary cannot be written since "+now.Add(-bound).UTC().Format(time.TimeOnly)+
			": this target had shown every acked beat, so its lag is unknown (at most the outage's length)")
	case lag >= t.p.cfg.StallAfter && now.Sub(seenAt) >= t.p.cfg.StallAfter:
		t.fireAt(now, EventNoProgress, "no beat shown for "+now.Sub(seenAt).Round(time.Millisecond).String())
	case lag >= t.p.cfg.LagThreshold:
		t.fireAt(now, EventLagHigh, "lag "+lag.Round(time.Millisecond).String()+" ≥ "+t.p.cfg.LagThreshold.String())
	default:
		t.fireAt(now, EventLagOK, "")
	}
}

func (t *Target) fire(e Event, reason string) { t.fireAt(t.p.now(), e, reason) }

func (t *Target) fireAt(now time.Time, e Event, reason string) {
	t.mu.Lock()
	from := t.state
	to, err := Transition(from, e)
	if err != nil {
		t.mu.Unlock()
		// Not an error for the operator: a late poll result after the
		// target went down. Keep the state.
		t.p.logger.Debug("ignored event", "target", t.name, "error", err.Error())
		return
	}
	if to == from {
		t.mu.Unlock()
		return
	}
	if e == EventConnected || to == StateConnecting {
		t.known = false // re-learn the position; do not time beats across the gap
	}
	t.state, t.since, t.reason = to, now, reason
	if from == StateConnecting && to != StateDown {
		// Measured again: the error that took it down is history (it
		// stays in the transition log), not the reason for this state.
		t.lastErr = ""
	}
	t.transitions++
	t.mu.Unlock()
	if t.parent != nil {
		return // a backend's state shows in its endpoint's backend list only
	}
	if to == StateConnecting {
		t.forgetBackends()
	}
	ev := TransitionEvent{Target: t.name, Kind: t.kind, From: from, To: to, Event: e, Reason: reason, At: now}
	level := slog.LevelInfo
	if to == StateDown || to == StateStalled || to == StatePromoted {
		level = slog.LevelWarn
	}
	t.p.logger.Log(context.Background(), level, "target state", "target", t.name, "kind", string(t.kind), "from", string(from), "to", string(to), "reason", reason)
	t.p.each(func(o Observer) { o.Transition(ev) })
}
