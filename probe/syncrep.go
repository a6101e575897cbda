package probe

// syncrep.go holds synchronous replication end to end (~410 lines): the
// synchronous_standby_names grammar, the per-standby state and the commit
// wait, which one decision (who a commit waits for) ties together.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Synchronous replication, as the primary reports it.
//
// A standby target's sync_state and sync_priority come from the primary's
// pg_stat_replication, matched by application_name = the target's name
// (compared case-insensitively, as PostgreSQL compares it with
// synchronous_standby_names). The target's DSN points at the standby, and
// a standby does not know its own sync state: only the primary does, and
// only by application_name. Name a standby target after the
// application_name in its primary_conninfo; a target no row matches is
// "unknown", with the reason.
//
// How much of the writer's round trip is the commit waiting for
// synchronous standbys is not measured per beat: the beat is one
// statement, its commit inside it, and nothing on the wire separates the
// wait. walprobe reports PostgreSQL's own measure instead:
// pg_stat_replication's write_lag, flush_lag or replay_lag (for
// synchronous_commit remote_write, on, remote_apply) is the time between
// the primary flushing recent WAL and that standby confirming it, which
// the documentation names as the delay that level incurred while
// committing. The commit waits for the slowest of the FIRST n synchronous
// standbys, or the n-th fastest of the ANY n quorum. It is sampled once
// per watcher read and is null when PostgreSQL has no recent sample (it
// clears the lags once a standby has applied everything and reported so
// twice).

// Sync states, as pg_stat_replication.sync_state spells them, plus
// SyncUnknown.
const (
	SyncSync      = "sync"
	SyncQuorum    = "quorum"
	SyncPotential = "potential"
	SyncAsync     = "async"
	SyncUnknown   = "unknown"
)

// SyncStates lists every sync state, in the order metrics export them.
var SyncStates = []string{SyncSync, SyncQuorum, SyncPotential, SyncAsync, SyncUnknown}

// SyncInfo is a standby target's place in synchronous replication
// (/v1/state shows it as sync_state, sync_priority and sync_reason on the
// target).
type SyncInfo struct {
	// State is pg_stat_replication.sync_state of the row matched to the
	// target, or SyncUnknown (Reason says why).
	State string
	// Priority is pg_stat_replication.sync_priority (0 for an
	// asynchronous standby); nil while State is unknown.
	Priority *int
	Reason   string
}

// Known reports whether the primary told the target's sync state.
func (s SyncInfo) Known() bool { return s.State != "" && s.State != SyncUnknown }

// SyncRep is the primary's synchronous replication as of one watcher read.
type SyncRep struct {
	At time.Time
	// The settings as the watcher's session sees them. The watcher
	// connects with the writer's DSN, so a synchronous_commit set for the
	// role, the database or in the DSN's options applies to both.
	SynchronousCommit string
	StandbyNames      string
	// Method is "first" or "any", Num how many standbys a commit waits
	// for, Listed the names in synchronous_standby_names; all empty when
	// it is empty.
	Method string
	Num    int
	Listed []string
	// Active: commits wait for standbys (names set, and synchronous_commit
	// is on, remote_write or remote_apply).
	Active bool
	// WaitsFor names the standbys commits wait for now: the sync (FIRST)
	// or quorum (ANY) rows, or, when too few stream, the listed standbys
	// that do not. nil while pg_stat_replication is hidden.
	WaitsFor []string
	// CommitWait estimates how long a commit waits for them (see the
	// package comment above); 0 when commits do not wait, nil when unknown.
	CommitWait     *time.Duration
	CommitWaitFrom string
	// Waiting is how many backends the watcher's role can see waiting for
	// synchronous replication (wait_event SyncRep), OldestWait how long the
	// oldest has run its statement.
	Waiting    int64
	OldestWait *time.Duration
	// Blocked says, while commits wait, for whom and why: set while
	// backends wait (Waiting > 0) and whenever fewer listed standbys
	// stream than commits need.
	Blocked string
	// Hidden is set when pg_stat_replication's details are hidden from
	// the role (no pg_monitor): the standbys' sync states are unknown.
	Hidden string
}

// standbyNames is synchronous_standby_names, parsed.
type standbyNames struct {
	method string // first or any
	num    int
	names  []string // as written, quotes removed; "*" matches any standby
}

// parseStandbyNames parses synchronous_standby_names: "FIRST n (list)",
// "ANY n (list)", "n (list)" (FIRST) or a bare list (FIRST 1). Names are
// identifiers, double-quoted when they need to be. ok is false for an
// empty setting; err for one the server would not have accepted.
func parseStandbyNames(s string) (standbyNames, bool, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return standbyNames{}, false, nil
	}
	sn := standbyNames{method: "first", num: 1}
	rest := s
	word, after := leadingWord(rest)
	switch strings.ToLower(word) {
	case "first", "any":
		if n, a := leadingWord(after); n != "" {
			if _, err := strconv.Atoi(n); err == nil && strings.HasPrefix(strings.TrimSpace(a), "(") {
				sn.method, rest = strings.ToLower(word), after
			}
		}
	}
	if n, after := leadingWord(rest); n != "" {
		if v, err := strconv.Atoi(n); err == nil {
			a := strings.TrimSpace(after)
			if !strings.HasPrefix(a, "(") || !strings.HasSuffix(a, ")") {
				return sn, false, fmt.Errorf("synchronous_standby_names %q: want a parenthesised list after %d", s, v)
			}
			sn.num, rest = v, a[1:len(a)-1]
		}
	}
	names, err := splitNames(rest)
	if err != nil {
		return sn, false, fmt.Errorf("synchronous_standby_names %q: %w", s, err)
	}
	sn.names = names
	return sn, true, nil
}

// leadingWord splits off the first run of letters and digits.
func leadingWord(s string) (word, rest string) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
		i++
	}
	return s[:i], s[i:]
}

// splitNames splits a comma-separated list of standby names; a name in
// double quotes may hold commas and doubled quotes.
func splitNames(s string) ([]string, error) {
	var out []string
	var b strings.Builder
	quoted, inQuotes := false, false
	flush := func() error {
		n := b.String()
		if !quoted {
			n = strings.TrimSpace(n)
		}
		if n == "" {
			return fmt.Errorf("empty standby name")
		}
		out = append(out, n)
		b.Reset()
		quoted = false
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuotes && c == '"' && i+1 < len(s) && s[i+1] == '"':
			b.WriteByte('"')
			i++
		case c == '"':
			if !inQuotes && strings.TrimSpace(b.String()) == "" {
				b.Reset()
			}
			inQuotes = !inQuotes
			quoted = true
		case inQuotes:
			b.WriteByte(c)
		case c == ',':
			if err := flush(); err != nil {
				return nil, err
			}
		case quoted && c != ' ' && c != '\t':
			return nil, fmt.Errorf("text after a quoted name")
		case !quoted:
			b.WriteByte(c)
		}
	}
	if inQuotes {
		return nil, fmt.Errorf("unterminated quoted name")
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// listed reports whether application name app is in the list.
func (sn standbyNames) listed(app string) bool {
	return slices.ContainsFunc(sn.names, func(n string) bool { return n == "*" || strings.EqualFold(n, app) })
}

// waitLevels maps synchronous_commit to the position a commit waits for;
// levels that do not wait are absent.
var waitLevels = map[string]string{"on": "flush", "remote_write": "write", "remote_apply": "replay"}

// syncRepFrom derives SyncRep from the settings, the pg_stat_replication
// rows (rows hidden: c.Hidden set) and the SyncRep waiters the watcher
// saw. It is pure: the watcher reads, this decides.
func syncRepFrom(at time.Time, names, commit string, c ClassicPrimary, waiting int64, oldest *time.Duration) SyncRep {
	s := SyncRep{At: at, SynchronousCommit: commit, StandbyNames: names, Waiting: waiting, OldestWait: oldest, Hidden: c.Hidden}
	sn, ok, err := parseStandbyNames(names)
	if ok {
		s.Method, s.Num, s.Listed = sn.method, sn.num, sn.names
	}
	level, waits := waitLevels[commit]
	s.Active = ok && waits
	if !s.Active {
		// Commits do not wait for standbys: the wait is known to be 0.
		s.CommitWait, s.WaitsFor = new(time.Duration), []string{}
		s.CommitWaitFrom = "commits do not wait for standbys (synchronous_standby_names empty or synchronous_commit " + commit + ")"
		if err != nil {
			s.CommitWait, s.CommitWaitFrom = nil, err.Error()
		}
		return s
	}
	var streaming []string // listed standbys that stream
	var chosen []ReplicationRow
	if c.Hidden == "" {
		for _, r := range c.Replication {
			if sn.listed(r.ApplicationName) && r.State == "streaming" {
				streaming = append(streaming, r.ApplicationName)
			}
			if r.SyncState == SyncSync || r.SyncState == SyncQuorum {
				chosen = append(chosen, r)
			}
		}
		s.WaitsFor = []string{}
		for _, r := range chosen {
			s.WaitsFor = append(s.WaitsFor, r.ApplicationName)
		}
		var missing []string
		if len(streaming) < sn.num {
			for _, n := range sn.names {
				if n != "*" && !slices.ContainsFunc(streaming, func(a string) bool { return strings.EqualFold(a, n) }) {
					missing = append(missing, n)
				}
			}
			if len(missing) == 0 {
				// Only * is listed: any standby would do, none streams.
				missing = []string{"any standby (*)"}
			}
			s.WaitsFor = append(s.WaitsFor, missing...)
		}
		s.CommitWait, s.CommitWaitFrom = commitWait(sn, level, chosen)
		// Too few listed standbys stream: every commit waits, whether or
		// not one is waiting at this read. (A writer whose statement timed
		// out cancels its wait, so between its attempts none may be.)
		if waiting > 0 || len(missing) > 0 {
			s.Blocked = blockedReason(sn, names, commit, s.WaitsFor, missing, streaming, waiting, oldest)
		}
	} else if waiting > 0 {
		s.Blocked = fmt.Sprintf("%d commit(s) wait for synchronous standbys (synchronous_standby_names = '%s', synchronous_commit = %s); which ones is hidden: %s",
			waiting, names, commit, c.Hidden)
	}
	return s
}

// commitWait is the estimate described in the package comment: the lag
// at level of the standbys a commit waits for.
func commitWait(sn standbyNames, level string, chosen []ReplicationRow) (*time.Duration, string) {
	var lags []time.Duration
	var from []string
	for _, r := range chosen {
		l := map[string]*time.Duration{"write": r.WriteLag, "flush": r.FlushLag, "replay": r.ReplayLag}[level]
		if l != nil {
			lags = append(lags, *l)
			from = append(from, r.ApplicationName)
		}
	}
	if len(chosen) < sn.num || len(lags) < sn.num || len(lags) == 0 {
		return nil, ""
	}
	slices.Sort(lags)
	v := lags[len(lags)-1] // FIRST n: the slowest of the n
	how := "the slowest"
	if sn.method == "any" {
		v, how = lags[sn.num-1], "the fastest"
		if sn.num > 1 {
			how = fmt.Sprintf("the %s fastest", ordinal(sn.num))
		}
	}
	return &v, fmt.Sprintf("pg_stat_replication.%s_lag, %s of %s", level, how, strings.Join(from, ", "))
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "1st"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	}
	return strconv.Itoa(n) + "th"
}

// blockedReason says for whom commits wait, in the words an operator
// needs: which standby, and whether it streams at all.
func blockedReason(sn standbyNames, names, commit string, waitsFor, missing, streaming []string, waiting int64, oldest *time.Duration) string {
	who := "synchronous standby"
	if len(waitsFor) != 1 {
		who += "s"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "commits wait for %s %s", who, strings.Join(waitsFor, ", "))
	if len(missing) > 0 {
		fmt.Fprintf(&b, " (%s %d needs %d streaming, %d stream; not streaming: %s)",
			strings.ToUpper(sn.method), sn.num, sn.num, len(streaming), strings.Join(missing, ", "))
	}
	fmt.Fprintf(&b, ": synchronous_standby_names = '%s', synchronous_commit = %s; %d backend(s) waiting", names, commit, waiting)
	if oldest != nil {
		fmt.Fprintf(&b, ", the oldest for %s", oldest.Round(time.Millisecond))
	}
	return b.String()
}

// SetSyncRep records the primary's synchronous replication; it logs when
// commits start and stop waiting for standbys.
func (p *Probe) SetSyncRep(s SyncRep) {
	p.mu.Lock()
	was := p.syncRep != nil && p.syncRep.Blocked != ""
	p.syncRep = &s
	p.mu.Unlock()
	switch {
	case s.Blocked != "" && !was:
		p.logger.Warn("commits wait for synchronous replication", "reason", s.Blocked)
	case s.Blocked == "" && was:
		p.logger.Info("commits no longer wait for synchronous replication")
	}
}

// SyncRep returns the primary's synchronous replication as last read (nil
// before the first read). The value is a copy.
func (p *Probe) SyncRep() *SyncRep {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.syncRep == nil {
		return nil
	}
	s := *p.syncRep
	return &s
}

// Sync returns the sync state of the target named target, from the
// primary's pg_stat_replication row whose application_name is that name.
func (p *Probe) Sync(target string) SyncInfo {
	p.mu.Lock()
	c, s := p.primaryClassic, p.syncRep
	p.mu.Unlock()
	return syncInfoFor(target, c, s)
}

func syncInfoFor(target string, c *ClassicPrimary, s *SyncRep) SyncInfo {
	unknown := func(format string, args ...any) SyncInfo {
		return SyncInfo{State: SyncUnknown, Reason: fmt.Sprintf(format, args...)}
	}
	if c == nil {
		return unknown("the primary's pg_stat_replication has not been read yet")
	}
	if c.Hidden != "" {
		return unknown("%s", c.Hidden)
	}
	var rows []ReplicationRow
	for _, r := range c.Replication {
		if strings.EqualFold(r.ApplicationName, target) {
			rows = append(rows, r)
		}
	}
	switch {
	case len(rows) > 1:
		return unknown("%d pg_stat_replication rows have application_name %q: give each standby its own application_name in primary_conninfo", len(rows), target)
	case len(rows) == 0:
		if s != nil {
			if sn, ok, _ := parseStandbyNames(s.StandbyNames); ok && slices.ContainsFunc(sn.names, func(n string) bool { return strings.EqualFold(n, target) }) {
				return unknown("listed in synchronous_standby_names but not connected to the primary (no pg_stat_replication row with application_name %q)", target)
			}
		}
		return unknown("no pg_stat_replication row on the primary has application_name %q: the standby is not streaming from it, or its primary_conninfo lacks application_name=%s (walprobe matches a standby target by its name)", target, target)
	}
	r := rows[0]
	if r.SyncState == "" || r.SyncPriority == nil {
		return unknown("pg_stat_replication shows no sync_state for application_name %q", target)
	}
	prio := int(*r.SyncPriority)
	return SyncInfo{State: r.SyncState, Priority: &prio}
}
