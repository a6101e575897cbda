package probe

import (
	"context"
	"fmt"
	"log/slog"
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
	warned   bool // the hidden-rows note was logged
}

// NewPrimaryWatcher returns a watcher on the primary.
func NewPrimaryWatcher(conn *pgx.ConnConfig, p *Probe, logger *slog.Logger) *PrimaryWatcher {
	return &PrimaryWatcher{conn: conn, p: p, interval: p.cfg.Interval, logger: logger.With("component", "primary_watcher")}
}

const replicationSQL = `SELECT coalesce(application_name, ''), coalesce(client_addr::text, ''), coalesce(state, ''),
  coalesce(sent_lsn::text, ''), coalesce(write_lsn::text, ''), coalesce(flush_lsn::text, ''), coalesce(replay_lsn::text, ''),
  extract(epoch FROM write_lag)::float8, extract(epoch FROM flush_lag)::float8, extract(epoch FROM replay_lag)::float8
FROM pg_stat_replication ORDER BY application_name`

const slotsSQL = `SELECT slot_name, slot_type, active, coalesce(confirmed_flush_lsn::text, ''), coalesce(restart_lsn::text, '')
FROM pg_replication_slots ORDER BY slot_name`

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
	for {
		if conn == nil {
			c, err := pgconf.Connect(ctx, "primary", w.conn)
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
			wait = max(wait, bo.NextBackOff())
		}
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

func (w *PrimaryWatcher) collect(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, max(w.interval, 2*time.Second))
	defer cancel()
	c := ClassicPrimary{At: time.Now(), Replication: []ReplicationRow{}}
	var canSee bool
	if err := conn.QueryRow(ctx, canSeeSQL).Scan(&canSee); err != nil {
		return fmt.Errorf("check pg_monitor: %w", err)
	}
	rows, err := conn.Query(ctx, replicationSQL)
	if err != nil {
		return fmt.Errorf("read pg_stat_replication: %w", err)
	}
	for rows.Next() {
		var r ReplicationRow
		var wl, fl, rl *float64
		if err := rows.Scan(&r.ApplicationName, &r.ClientAddr, &r.State, &r.SentLSN, &r.WriteLSN, &r.FlushLSN, &r.ReplayLSN, &wl, &fl, &rl); err != nil {
			rows.Close()
			return fmt.Errorf("read pg_stat_replication: %w", err)
		}
		r.WriteLag, r.FlushLag, r.ReplayLag = fsecs(wl), fsecs(fl), fsecs(rl)
		if r.SentLSN == "" && !canSee {
			continue // a row whose details the role may not see
		}
		c.Replication = append(c.Replication, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read pg_stat_replication: %w", err)
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
	for rows.Next() {
		var s SlotRow
		if err := rows.Scan(&s.SlotName, &s.SlotType, &s.Active, &s.ConfirmedFlushLSN, &s.RestartLSN); err != nil {
			rows.Close()
			return fmt.Errorf("read pg_replication_slots: %w", err)
		}
		c.Slots = append(c.Slots, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read pg_replication_slots: %w", err)
	}
	w.p.SetPrimaryClassic(c)
	return nil
}

// SlotRow is one pg_replication_slots row.
type SlotRow struct {
	SlotName          string `json:"slot_name"`
	SlotType          string `json:"slot_type"`
	Active            bool   `json:"active"`
	ConfirmedFlushLSN string `json:"confirmed_flush_lsn,omitempty"`
	RestartLSN        string `json:"restart_lsn,omitempty"`
}

// LSNLag is a time lag derived from a position a consumer reported to the
// primary, through the beat ring: 0 when the consumer has passed the
// newest beat, else the age of the oldest beat it has not passed.
type LSNLag struct {
	Consumer string   `json:"consumer"`
	Kind     string   `json:"kind"` // replication (pg_stat_replication) or slot
	LSNName  string   `json:"lsn"`  // write, flush, replay, confirmed_flush, restart
	LSN      string   `json:"position"`
	Lag      *Seconds `json:"lag_seconds"`
	Derived  string   `json:"derived_from"`
}

// LSNLags maps every consumer position the primary reported to a time lag.
func (p *Probe) LSNLags(now time.Time) []LSNLag {
	p.mu.Lock()
	c := p.primaryClassic
	p.mu.Unlock()
	if c == nil {
		return nil
	}
	var out []LSNLag
	add := func(consumer, kind, name, pos string) {
		if pos == "" {
			return
		}
		l := LSNLag{Consumer: consumer, Kind: kind, LSNName: name, LSN: pos, Derived: "lsn"}
		if lsn, err := heartbeat.ParseLSN(pos); err == nil {
			if d, ok := p.ring.LSNLag(lsn, now); ok {
				l.Lag = secs(d)
			}
		}
		out = append(out, l)
	}
	for _, r := range c.Replication {
		add(r.ApplicationName, "replication", "write", r.WriteLSN)
		add(r.ApplicationName, "replication", "flush", r.FlushLSN)
		add(r.ApplicationName, "replication", "replay", r.ReplayLSN)
	}
	for _, s := range c.Slots {
		add(s.SlotName, "slot", "confirmed_flush", s.ConfirmedFlushLSN)
		add(s.SlotName, "slot", "restart", s.RestartLSN)
	}
	return out
}
