package probe

import (
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
)

// Snapshots: the probe's whole state at one instant, in domain types
// (time.Duration, nil for unknown). State and lag come from one clock
// reading. The wire shapes (JSON, float seconds) live in sink/api.

// Snapshot is the probe's whole state at one moment. It is the domain's
// view, in durations and explicit unknowns (nil); the JSON shapes that
// show it live with the sinks that serialise it (sink/api for /v1/state).
type Snapshot struct {
	ProbeID     string
	At          time.Time
	Interval    time.Duration
	Beats       int64 // beats acked
	BeatsMissed int64
	// LastBeat is the newest acked beat; nil before the first.
	LastBeat *heartbeat.Beat
	Primary  PrimarySnapshot
	Targets  []TargetSnapshot // by name
	// LSNLags are time lags derived from the LSNs the primary reports for
	// consumers the probe does not read from.
	LSNLags []LSNLag
}

// PrimarySnapshot describes the writer's side.
type PrimarySnapshot struct {
	Up bool
	// Error is why beats are not written (the connection), else a second
	// writer sharing the heartbeat row; empty when neither.
	Error string
	// Classic is the primary's view of its consumers; nil before the
	// first read.
	Classic *ClassicPrimary
	// Sync is the primary's synchronous replication; nil before the
	// first read.
	Sync *SyncRep
}

// Snapshot returns the current state of the probe and every target.
func (p *Probe) Snapshot() Snapshot {
	now := p.now()
	p.mu.Lock()
	s := Snapshot{
		ProbeID:     p.cfg.ProbeID,
		At:          now,
		Interval:    p.cfg.Interval,
		Beats:       p.beats,
		BeatsMissed: p.missed,
		Primary:     PrimarySnapshot{Up: p.writerUp, Error: p.primaryErrorLocked(), Classic: p.primaryClassic, Sync: p.syncRep},
	}
	if sr := p.syncRep; sr != nil && sr.Blocked != "" && !p.outageSince.IsZero() {
		// Why the writer cannot write, before how it failed.
		s.Primary.Error = strings.TrimSuffix(sr.Blocked+"; "+s.Primary.Error, "; ")
	}
	ts := p.targetsLocked()
	p.mu.Unlock()
	if b, ok := p.ring.Newest(); ok {
		s.LastBeat = &b
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	for _, t := range ts {
		// State and lag from the same instant: a snapshot never says
		// healthy beside a lag over the threshold.
		t.evaluateBackends(now)
		t.evaluateAt(now)
		snap := t.snapshot(now)
		if t.kind == KindStandby {
			sync := p.Sync(t.name)
			snap.Sync = &sync
		}
		s.Targets = append(s.Targets, snap)
	}
	s.LSNLags = p.LSNLags(now)
	return s
}

// TargetSnapshot is one target at one moment. nil is unknown, never 0.
type TargetSnapshot struct {
	Name        string
	Kind        Kind
	State       State
	StateSince  time.Time
	StateReason string
	// Lag is the current lag; nil until the target has been polled since
	// it (re)connected, and while it is unknown (state unknown: the
	// primary cannot be written).
	Lag *time.Duration
	// LagUpperBound is set while the lag is unknown: the time since the
	// writer stopped, which the lag cannot exceed.
	LagUpperBound *time.Duration
	// Delay and ErrorBound are the last timed beat's visibility delay;
	// nil before the first.
	Delay      *time.Duration
	ErrorBound *time.Duration
	// LastSeq is the highest seq the target has shown; nil until polled.
	LastSeq    *int64
	BeatsTimed int64
	LastError  string
	// Classic holds the target's classic numbers; nil before the first read.
	Classic *Classic
	// Dropped counts observations that cannot be true, by reason; nil
	// when there are none.
	Dropped map[DropReason]int64
	// BeatsLost counts beats lost in a failover before the target showed
	// them (acked by the old primary, never on the new timeline).
	BeatsLost int64
	// Backends lists the servers behind a read endpoint that answered
	// its polls (at most 16), worst lag first; Lag is the worst recent one.
	Backends []BackendSnapshot
	// Sync is a standby's place in synchronous replication, from the
	// primary's pg_stat_replication (Probe.Sync); nil for other kinds.
	Sync *SyncInfo
}

func (t *Target) snapshot(now time.Time) TargetSnapshot {
	t.mu.Lock()
	s := TargetSnapshot{
		Name: t.name, Kind: t.kind, State: t.state, StateSince: t.since, StateReason: t.reason,
		BeatsTimed: t.visible, LastError: t.lastErr, Classic: t.classic, BeatsLost: t.beatsLost,
	}
	if len(t.dropped) > 0 {
		s.Dropped = maps.Clone(t.dropped)
	}
	s.Backends = t.backendsLocked(now)
	if t.lastVis != nil {
		s.Delay = durationPtr(t.lastVis.Delay)
		s.ErrorBound = durationPtr(t.lastVis.ErrorBound)
	}
	if t.known {
		if lag, bound, ok := t.lagLocked(now); ok {
			s.Lag = durationPtr(lag)
		} else {
			s.LagUpperBound = durationPtr(bound)
		}
		s.LastSeq = new(t.lastSeen)
	}
	t.mu.Unlock()
	return s
}
