package heartbeat

import (
	"fmt"
	"time"
)

// LSN is a PostgreSQL WAL position.
type LSN uint64

// ParseLSN parses the textual X/Y form PostgreSQL prints.
func ParseLSN(s string) (LSN, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("parse lsn %q: %w", s, err)
	}
	return LSN(uint64(hi)<<32 | uint64(lo)), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// Beat is one successful heartbeat write.
//
// Sent and Acked come from the probe's clock and carry its monotonic
// reading, so Acked.Sub(Sent) and visibility delays measured against Acked
// are immune to wall-clock steps. PrimaryTime is the primary's own clock at
// the write (clock_timestamp() inside the upsert; the commit follows within
// the same statement).
type Beat struct {
	Seq         int64
	Sent        time.Time
	Acked       time.Time
	LSN         LSN       // WAL insert position right after the beat's row change; its commit record follows
	PrimaryTime time.Time // the primary's clock when it wrote the row
	// Lost is how many beats right before this one were acked by a server
	// whose history the one that wrote this beat does not have: after a
	// failover, beats the old primary acked but never replicated to the
	// promoted one. No target will ever show them.
	Lost int64
	// Orphaned marks such a lost beat in the ring.
	Orphaned bool
}

// LostRange is the seqs (from, to] this beat says were lost.
func (b Beat) LostRange() (from, to int64) { return b.Seq - 1 - b.Lost, b.Seq - 1 }

// RTT is how long the write took from the probe's side.
func (b Beat) RTT() time.Duration { return b.Acked.Sub(b.Sent) }

// StreamStages splits one beat's trip to the logical stream. Commit and
// ServerSent are the primary's clock; Received is the probe's. walstream
// fills it and the probe passes it on to its observers (as
// probe.StreamStages).
type StreamStages struct {
	Target     string
	Seq        int64 // the beat's seq; probe.Target.Stages fills Beat from it
	Beat       Beat
	Commit     time.Time // commit timestamp (pgoutput Begin)
	ServerSent time.Time // XLogData server time
	Received   time.Time
}
