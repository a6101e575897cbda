package heartbeat

// conflictQuiet is how many consecutive checked beats without a jump end a
// conflict episode. Two writers at similar intervals interleave and jump on
// nearly every beat, so a short run of clean beats means the other one
// stopped. The trade-off: a second writer beating more than conflictQuiet
// times slower than this one ends and restarts an episode on each of its
// beats; each restart is one warning, not one per beat.
const conflictQuiet = 10

// seqWatch notices another writer on the probe's heartbeat row from the
// seqs this writer's own upserts return. It is pure: the writer feeds it
// and reports what it says. Only Run's goroutine touches it.
//
// On an unbroken connection, after acking seq S the next upsert returns
// S+1 unless someone else wrote the row in between (upsertAfterSQL takes
// GREATEST(h.seq, S)+1, so it never returns less). Only then is a jump
// evidence: the first beat on a new connection may legitimately jump
// (after a failover GREATEST lifts seq past beats the promoted server
// never saw, and the probe may have restarted), and so may the beat after
// one whose outcome is unknown (an error after the commit).
type seqWatch struct {
	probeID string
	primary string // host:port/db, for the error

	last     int64 // seq of the last beat acked on this connection; 0: none, nothing to expect
	conflict bool  // an episode is under way
	clean    int   // checked beats without a jump since the last jump
}

// forget drops the expectation: the next beat is not checked. Call it on
// a new connection and after a beat that failed.
func (s *seqWatch) forget() { s.last = 0 }

// acked takes the seq a successful upsert returned. changed is true when an
// episode begins (err is a *ProbeIDConflictError) or ends (err is nil);
// within an episode, and outside one, it is false.
func (s *seqWatch) acked(seq int64) (changed bool, err error) {
	prev := s.last
	s.last = seq
	if prev == 0 {
		return false, nil
	}
	if seq > prev+1 {
		s.clean = 0
		if s.conflict {
			return false, nil
		}
		s.conflict = true
		return true, &ProbeIDConflictError{ProbeID: s.probeID, Primary: s.primary, From: prev, To: seq}
	}
	if !s.conflict {
		return false, nil
	}
	s.clean++
	if s.clean < conflictQuiet {
		return false, nil
	}
	s.conflict, s.clean = false, 0
	return true, nil
}
