package probe

// primary.go is the primary watcher's one loop and its row parsing
// (~420 lines): they read one statement's columns and change together.

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

// PrimaryWatcher reads what the primary says about its consumers once per
// interval: pg_stat_replication (the classic write/flush/replay_lag) and
// pg_replication_slots. Their LSNs are turned into time lags through the
// beat ring (see LSNLags), which is right on an idle primary and keeps
// growing for a consumer that stopped.
type PrimaryWatcher struct {
	conn     *pgx.ConnConfig
	p        *Probe
	interval time.Duration
	logger   *slog.Logger
	now      func() time.Time
	warned   bool // the hidden-rows note was logged
	// waits are the last commit-wait samples under the current settings
	// (waitsFor); the median is reported. Only Run's goroutine uses them.
	waits    []time.Duration
	waitsFor string
}

// commitWaitSamples is how many watcher reads the commit wait is the
// median of: one lag-tracker sample can belong to WAL that no commit
// waited for (a standby's apply confirmed only with its next status
// message), and read alone it can exceed the beats' whole round trip.
const commitWaitSamples = 8

// smoothCommitWait replaces s.CommitWait, while commits wait for
// standbys, by the median of the recent samples under the same settings.
func (w *PrimaryWatcher) smoothCommitWait(s *SyncRep) {
	key := s.StandbyNames + "\x00" + s.SynchronousCommit
	if key != w.waitsFor || !s.Active {
		w.waits, w.waitsFor = w.waits[:0], key
	}
	if !s.Active || s.CommitWait == nil && len(w.waits) == 0 {
		return
	}
	if s.CommitWait != nil {
		// A read without a sample (PostgreSQL cleared the lags of a
		// caught-up standby) keeps the recent ones.
		if len(w.waits) == commitWaitSamples {
			w.waits = append(w.waits[:0], w.waits[1:]...)
		}
		w.waits = append(w.waits, *s.CommitWait)
	}
	sorted := slices.Clone(w.waits)
	slices.Sort(sorted)
	m := sorted[len(sorted)/2]
	s.CommitWait = &m
	if s.CommitWaitFrom == "" {
		s.CommitWaitFrom = "pg_stat_replication lags"
	}
	s.CommitWaitFrom += fmt.Sprintf(", median of the last %d samples", len(sorted))
}

// NewPrimaryWatcher returns a watcher on the primary.
func NewPrimaryWatcher(conn *pgx.ConnConfig, p *Probe, logger *slog.Logger) *PrimaryWatcher {
	return &PrimaryWatcher{conn: conn, p: p, interval: p.cfg.Interval, logger: logger.With("component", "primary_watcher"), now: p.now}
}

// The ages are computed on the server, against the same statement's
// clock: reply_time is the standby's send time, and the probe's clock and
// the primary's may differ, so only "how long before this read" carries
// over to the probe's clock (see reportedAt). clock_timestamp(), not now():
// it is read as the row is produced, closest to when the result is sent.
const replicationSQL = `SELECT coalesce(r.application_name, ''), coalesce(host(r.client_addr), ''), r.pid, r.backend_start,
  coalesce(s.slot_name::text, ''), coalesce(r.state, ''),
  coalesce(r.sent_lsn::text, ''), coalesce(r.write_lsn::text, ''), coalesce(r.flush_lsn::text, ''), coalesce(r.replay_lsn::text, ''),
  extract(epoch FROM r.write_lag)::float8, extract(epoch FROM r.flush_lag)::float8, extract(epoch FROM r.replay_lag)::float8,
  extract(epoch FROM clock_timestamp() - r.reply_time)::float8,
  coalesce(r.sync_state, ''), r.sync_priority
FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid
ORDER BY r.application_name, r.client_addr, r.backend_start, r.pid`

// An active slot's position comes from its walsender's last reply (the
// walsender moves the slot when it processes the reply), so it is as of
// that reply_time; any other slot is as of the read.
const slotsSQL = `SELECT s.slot_name, s.slot_type, s.active, coalesce(s.confirmed_flush_lsn::text, ''), coalesce(s.restart_lsn::text, ''),
  s.active_pid, extract(epoch FROM clock_timestamp() - r.reply_time)::float8
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
ORDER BY s.slot_name`

// syncSQL reads the settings that decide whether commits wait for
// standbys, and the backends waiting for them now. wait_event is visible
// for the role's own backends (the writer's) without pg_monitor.
const syncSQL = `SELECT current_setting('synchronous_standby_names'), current_setting('synchronous_commit'),
  count(*) FILTER (WHERE wait_event = 'SyncRep'),
  extract(epoch FROM clock_timestamp() - min(query_start) FILTER (WHERE wait_event = 'SyncRep'))::float8
FROM pg_stat_activity`

const canSeeSQL = `SELECT rolsuper OR pg_has_role(current_user, 'pg_monitor', 'USAGE') OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
FROM pg_roles WHERE rolname = current_user`

// Run polls until ctx is done; failures are retried on the next interval.
func (w *PrimaryWatcher) Run(ctx context.Context) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	bo := pgconf.NewBackoff()
	var connErr error
	for {
		if conn == nil {
			c, err := pgconf.Connect(ctx, "primary", w.conn)
			connErr = err
			if err == nil {
				conn = c
				bo.Reset()
			}
		}
		if conn != nil {
			if err := w.collect(ctx, conn); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				w.logger.Debug("collect failed", "error", pgconf.Explain("primary", w.conn, err).Error())
				closeConn(conn)
				conn = nil
			}
		}
		wait := w.interval
		if conn == nil {
			wait = max(wait, pgconf.NextRetry(bo, connErr))
		}
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

func (w *PrimaryWatcher) collect(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, max(w.interval, 2*time.Second))
	defer cancel()
	c := ClassicPrimary{At: w.now(), Replication: []ReplicationRow{}}
	var canSee bool
	if err := conn.QueryRow(ctx, canSeeSQL).Scan(&canSee); err != nil {
		return fmt.Errorf("check pg_monitor: %w", err)
	}
	rows, err := conn.Query(ctx, replicationSQL)
	if err != nil {
		return fmt.Errorf("read pg_stat_replication: %w", err)
	}
	var replyAges []*float64
	for rows.Next() {
		var r ReplicationRow
		var wl, fl, rl, age *float64
		if err := rows.Scan(&r.ApplicationName, &r.ClientAddr, &r.PID, &r.BackendStart, &r.SlotName, &r.State,
			&r.SentLSN, &r.WriteLSN, &r.FlushLSN, &r.ReplayLSN, &wl, &fl, &rl, &age, &r.SyncState, &r.SyncPriority); err != nil {
			rows.Close()
			return fmt.Errorf("read pg_stat_replication: %w", err)
		}
		r.WriteLag, r.FlushLag, r.ReplayLag = fsecs(wl), fsecs(fl), fsecs(rl)
		if r.SentLSN == "" && !canSee {
			continue // a row whose details the role may not see
		}
		c.Replication = append(c.Replication, r)
		replyAges = append(replyAges, age)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read pg_stat_replication: %w", err)
	}
	read := w.now()
	for i, age := range replyAges {
		c.Replication[i].AsOf = reportedAt(read, age)
	}
	if !canSee {
		c.Hidden = fmt.Sprintf("pg_stat_replication details are hidden from user %q: GRANT pg_monitor TO %s (optional: true numbers do not need it)", w.conn.User, heartbeat.QuoteIdent(w.conn.User))
		if !w.warned {
			w.logger.Warn("classic replication numbers hidden", "fix", fmt.Sprintf("GRANT pg_monitor TO %s", heartbeat.QuoteIdent(w.conn.User)))
			w.warned = true
		}
	}
	rows, err = conn.Query(ctx, slotsSQL)
	if err != nil {
		return fmt.Errorf("read pg_replication_slots: %w", err)
	}
	replyAges = replyAges[:0]
	for rows.Next() {
		var s SlotRow
		var age *float64
		if err := rows.Scan(&s.SlotName, &s.SlotType, &s.Active, &s.ConfirmedFlushLSN, &s.RestartLSN, &s.ActivePID, &age); err != nil {
			rows.Close()
			return fmt.Errorf("read pg_replication_slots: %w", err)
		}
		c.Slots = append(c.Slots, s)
		replyAges = append(replyAges, age)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read pg_replication_slots: %w", err)
	}
	read = w.now()
	for i, age := range replyAges {
		c.Slots[i].AsOf, c.Slots[i].AsOfSource = read, AsOfRead
		if at := reportedAt(read, age); at != nil {
			c.Slots[i].AsOf, c.Slots[i].AsOfSource = *at, AsOfReply
		}
	}
	var names, commit string
	var waiting int64
	var oldest *float64
	if err := conn.QueryRow(ctx, syncSQL).Scan(&names, &commit, &waiting, &oldest); err != nil {
		return fmt.Errorf("read synchronous replication settings: %w", err)
	}
	w.p.SetPrimaryClassic(c)
	sr := syncRepFrom(w.now(), names, commit, c, waiting, fsecs(oldest))
	w.smoothCommitWait(&sr)
	w.p.SetSyncRep(sr)
	return nil
}

// reportedAt maps a position's age on the server (clock_timestamp() −
// reply_time, in seconds) to the probe's clock: the instant read, when
// the result arrived, minus that age. Taking the arrival, not the send,
// matches how beats are timed: a beat's Acked is its commit on the server
// plus the trip back, and so is read for the server's clock_timestamp().
//
// reply_time is the standby's clock. A standby clock behind the primary's
// makes the age too large and the report look older (the lag as of it
// reads low by the skew); one ahead would put the report after the read,
// which cannot be, so the age is clamped at 0. nil when the server has no
// reply_time (no status message received yet).
func reportedAt(read time.Time, age *float64) *time.Time {
	if age == nil {
		return nil
	}
	at := read.Add(-time.Duration(max(*age, 0) * float64(time.Second)))
	return &at
}

// SlotRow is one pg_replication_slots row.
type SlotRow struct {
	SlotName          string
	SlotType          string
	Active            bool
	ConfirmedFlushLSN string
	RestartLSN        string
	ActivePID         *int32
	// AsOf is when the slot was at these positions, by the probe's clock:
	// its walsender's last reply_time (AsOfSource reply_time), or the read
	// (AsOfSource read) when no walsender streams it.
	AsOf       time.Time
	AsOfSource string
}

// Where a position's as-of instant comes from.
const (
	// AsOfReply: the consumer's last status message (reply_time).
	AsOfReply = "reply_time"
	// AsOfRead: the read itself. A slot nobody streams has no messages;
	// its position is what the server holds as of the read.
	AsOfRead = "read"
)

// LSNLag is a time lag derived from a position a consumer reported to the
// primary, through the beat ring, as of the moment it was reported. See
// LSNLags for the rule.
type LSNLag struct {
	// Consumer names the row, unique within a snapshot: the slot name
	// for slots; application_name@client_addr for pg_stat_replication
	// rows (see consumerNames).
	Consumer string
	Kind     string // replication (pg_stat_replication) or slot
	LSNName  string // write, flush, replay, confirmed_flush, restart
	LSN      string
	Lag      *time.Duration
	Derived  string
	// AsOf is the instant Lag holds for: when the consumer had LSN (its
	// reply_time, or the read for a slot nobody streams), by the probe's
	// clock. PositionAge is how long before the snapshot that was. Both
	// nil when the server has not received a status message yet.
	AsOf        *time.Time
	AsOfSource  string
	PositionAge *time.Duration
	// The pg_stat_replication row's identity (or the slot's active
	// walsender): what tells two consumers with one name apart.
	ApplicationName string
	ClientAddr      string
	PID             int32
}

// LSNLags maps every consumer position the primary reported to a time lag.
//
// The rule: a position P reported at R (the consumer's reply_time, mapped
// to the probe's clock by reportedAt) says the consumer had everything up
// to P at R, and nothing about later. So the lag is stated as of R: 0 when
// P is at or past every beat acked by R, else R minus the ack time of the
// oldest beat acked by R that P has not passed (heartbeat.Ring.LSNLagAsOf).
// Beats acked after R are not counted against the consumer.
//
// Why not as of now: positions arrive only with the consumer's status
// messages — after every WAL write/flush, else every
// wal_receiver_status_interval (10 s by default) — and are read once per
// interval. Comparing a position from R with beats acked up to now made a
// caught-up consumer saw-tooth up to the read interval and climb toward
// 10 s whenever beats paused between two status messages. As of R it
// reads 0 whatever its messages' age.
//
// A consumer that stops still grows: a standby whose replay is stuck
// keeps sending status messages with the old replay_lsn and a fresh
// reply_time (at least every status interval, after every beat while WAL
// flows), so the lag grows with R. A disconnected standby's row vanishes;
// a slot nobody streams is as of the read, so its lag grows with wall
// time. What the rule cannot say is how the consumer fared after R: that
// is PositionAge, exported beside the lag, which grows while a connected
// consumer sends nothing (until wal_sender_timeout drops its row).
func (p *Probe) LSNLags(now time.Time) []LSNLag {
	p.mu.Lock()
	c := p.primaryClassic
	p.mu.Unlock()
	if c == nil {
		return nil
	}
	var out []LSNLag
	add := func(l LSNLag, asOf *time.Time) {
		if l.LSN == "" {
			return
		}
		l.Derived = "lsn"
		if asOf != nil {
			at := *asOf
			l.AsOf = &at
			l.PositionAge = durationPtr(now.Sub(at))
			if lsn, err := heartbeat.ParseLSN(l.LSN); err == nil {
				if d, ok := p.ring.LSNLagAsOf(lsn, at); ok {
					l.Lag = durationPtr(d)
				}
			}
		}
		out = append(out, l)
	}
	names := consumerNames(c.Replication)
	for i, r := range c.Replication {
		l := LSNLag{Consumer: names[i], Kind: "replication", ApplicationName: r.ApplicationName, ClientAddr: r.ClientAddr, PID: r.PID}
		if r.AsOf != nil {
			l.AsOfSource = AsOfReply
		}
		for _, pos := range []struct{ name, lsn string }{{"write", r.WriteLSN}, {"flush", r.FlushLSN}, {"replay", r.ReplayLSN}} {
			l.LSNName, l.LSN = pos.name, pos.lsn
			add(l, r.AsOf)
		}
	}
	for _, s := range c.Slots {
		l := LSNLag{Consumer: s.SlotName, Kind: "slot", AsOfSource: s.AsOfSource}
		if s.ActivePID != nil {
			l.PID = *s.ActivePID
		}
		asOf := &s.AsOf
		if s.AsOf.IsZero() {
			asOf = nil
		}
		for _, pos := range []struct{ name, lsn string }{{"confirmed_flush", s.ConfirmedFlushLSN}, {"restart", s.RestartLSN}} {
			l.LSNName, l.LSN = pos.name, pos.lsn
			add(l, asOf)
		}
	}
	return out
}

// consumerNames names each pg_stat_replication row: application_name@
// client_addr ("local" for a Unix socket). Rows that share a name — two
// standbys on one host that both left application_name at its default,
// `walreceiver` — are told apart by connection order: the one whose
// walsender started first (then lowest pid) keeps the plain name, the
// others get #2, #3, …. The names are Prometheus label values, so they
// carry no pid: application names and addresses are configuration, and
// ordinals cannot exceed max_wal_senders, so the set stays bounded
// however often standbys reconnect. The price: when the first of two
// same-named standbys reconnects, the two swap names.
func consumerNames(rows []ReplicationRow) []string {
	names := make([]string, len(rows))
	groups := map[string][]int{}
	var keys []string
	for i, r := range rows {
		addr := r.ClientAddr
		if addr == "" {
			addr = "local"
		}
		k := r.ApplicationName + "@" + addr
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range keys {
		idx := groups[k]
		sort.SliceStable(idx, func(a, b int) bool {
			ra, rb := rows[idx[a]], rows[idx[b]]
			if sa, sb := ra.BackendStart, rb.BackendStart; sa != nil && sb != nil && !sa.Equal(*sb) {
				return sa.Before(*sb)
			} else if (sa == nil) != (sb == nil) {
				return sa != nil // known start times first
			}
			return ra.PID < rb.PID
		})
		for n, i := range idx {
			names[i] = k
			if n > 0 {
				names[i] = fmt.Sprintf("%s#%d", k, n+1)
			}
		}
	}
	return names
}
