package probe

import (
	"time"

	"github.com/walprobe/walprobe/heartbeat"
)

// Read your writes by LSN: which targets have replayed or applied at
// least a position on the primary.
//
// A standby's position is its replay LSN, read with every poll in the
// same statement as the heartbeat row (positionSQL), as of the moment the
// poll answered: replay only moves forward, so it held from then on. A
// logical subscriber applies in commit order, so once it shows a beat it
// has applied every transaction committed before that beat: its position
// is the WAL position of the newest beat it shows (coarser, never early).
// A read endpoint has such a beat position per server behind it (its polls
// carry no LSN function, which pgpool-II would route to the primary), and
// is eligible only when every server that answered recently is (an
// application can land on any of them). Positions are never extrapolated.

// Position is how far a target has replayed the primary's WAL, as of At.
type Position struct {
	LSN heartbeat.LSN
	At  time.Time
	// FromBeat: derived from the newest beat the target shows (a
	// subscriber), not read from the server.
	FromBeat bool
}

// setPosition records a replay position read from server (empty for a
// target that is not an endpoint) as of at.
func (t *Target) setPosition(server string, lsn heartbeat.LSN, at time.Time) {
	target := t
	if server != "" {
		t.mu.Lock()
		b, ok := t.backends[server]
		t.mu.Unlock()
		if !ok {
			return
		}
		target = b.t
	}
	target.mu.Lock()
	if lsn >= target.pos.LSN {
		target.pos = Position{LSN: lsn, At: at}
	}
	target.mu.Unlock()
}

// Position returns how far the target has replayed, and whether that is
// known: for an endpoint the least advanced server that answered within
// max(10 s, 10 intervals); for a subscriber the newest beat it shows.
func (t *Target) Position() (Position, bool) {
	now := t.p.now()
	if kids := t.children(); len(kids) > 0 {
		var worst Position
		found := false
		window := t.p.backendWindow()
		t.mu.Lock()
		recent := map[*Target]bool{}
		for _, b := range t.backends {
			recent[b.t] = now.Sub(b.lastAnswer) <= window
		}
		t.mu.Unlock()
		for _, c := range kids {
			if !recent[c] {
				continue
			}
			pos, ok := c.Position()
			if !ok {
				return Position{}, false // a recent server whose position is unknown
			}
			if !found || pos.LSN < worst.LSN {
				worst, found = pos, true
			}
		}
		return worst, found
	}
	t.mu.Lock()
	pos, seen, known := t.pos, t.lastSeen, t.known
	t.mu.Unlock()
	if pos.LSN != 0 {
		return pos, true
	}
	if !known {
		return Position{}, false
	}
	var b heartbeat.Beat
	t.p.ring.Between(seen-1, seen, func(x heartbeat.Beat) { b = x })
	if b.Seq == 0 || b.Orphaned {
		return Position{}, false
	}
	t.mu.Lock()
	at := t.lastSeenAt
	t.mu.Unlock()
	return Position{LSN: b.LSN, At: at, FromBeat: true}, true
}

// poked returns the channel a client's Poke wakes the target's readers on.
func (t *Target) poked() <-chan struct{} { return t.poke }

// Poke asks the target's readers for a poll now, without waiting for the
// beat schedule: a client is waiting for it to reach a position. At most
// one poke is pending per target.
func (t *Target) Poke() {
	select {
	case t.poke <- struct{}{}:
	default:
	}
}
