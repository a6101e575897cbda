package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
)

// doctorCmd checks every server once, read-only, and prints what run
// needs that is missing, with the fix. It takes all of run's flags, so a
// run command line or config file works as it is; only the servers are
// used.
type doctorCmd struct {
	runCmd
}

func (*doctorCmd) Help() string {
	return `Connects to the primary and every target once, changes nothing, and prints one row per server and check: ✓, ✗ with the exact fix, or – for something optional. Takes the same flags and config file as run. Exit status 0 when everything run needs holds, 1 otherwise, 2 for bad input.

Examples:

    # after walprobe setup, with the flags run will get
    walprobe doctor --primary 'postgres://walprobe@db1/app' \
        --standby replica1='postgres://walprobe@db2/app' \
        --subscriber reporting='postgres://walprobe@db3/app'

    # the same config file as run
    walprobe --config /etc/walprobe/walprobe.yaml doctor`
}

// finding is one row of the doctor's table.
type finding struct {
	server, check string
	mark          string // markOK, markFail or markOptional
	detail        string // what was found, or the fix
}

const (
	markOK       = "✓"
	markFail     = "✗"
	markOptional = "–" // missing, but run does not need it
)

func (c *doctorCmd) Run(ctx context.Context, s streams) error {
	cfg, err := c.validate()
	if err != nil {
		return err
	}
	var rows []finding
	rows = append(rows, doctorPrimary(ctx, cfg)...)
	for _, t := range cfg.targets {
		rows = append(rows, doctorTarget(ctx, t)...)
	}
	failed := printFindings(s, rows)
	if failed > 0 {
		fmt.Fprintf(s.out, "\n%d check(s) failed: fix them and run walprobe doctor again.\n", failed)
		return exitStatus(1)
	}
	fmt.Fprintln(s.out, "\neverything walprobe run needs is in place.")
	return nil
}

// printFindings prints the table and returns how many rows failed.
func printFindings(s streams, rows []finding) int {
	w1, w2 := len("SERVER"), len("CHECK")
	for _, r := range rows {
		w1, w2 = max(w1, len(r.server)), max(w2, len(r.check))
	}
	fmt.Fprintf(s.out, "%-*s  %-*s     %s\n", w1, "SERVER", w2, "CHECK", "DETAIL")
	failed := 0
	for _, r := range rows {
		if r.mark == markFail {
			failed++
		}
		fmt.Fprintf(s.out, "%-*s  %-*s  %s  %s\n", w1, r.server, w2, r.check, r.mark, oneLine(r.detail))
	}
	return failed
}

// doctorConnect opens one connection; the first row says whether it could.
func doctorConnect(ctx context.Context, name string, cfg *pgx.ConnConfig) (*pgx.Conn, []finding) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgconf.Connect(cctx, name, cfg)
	if err != nil {
		return nil, []finding{{name, "reachable", markFail, err.Error()}}
	}
	rows := []finding{{name, "reachable", markOK, fmt.Sprintf("%s as %s", pgconf.Addr(cfg), cfg.User)}}
	var ssl bool
	var version string
	err = conn.QueryRow(cctx, `SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false),
		coalesce((SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()), '')`).Scan(&ssl, &version)
	switch {
	case err != nil:
		rows = append(rows, finding{name, "TLS", markOptional, "cannot tell: " + pgconf.Explain(name, cfg, err).Error()})
	case ssl:
		rows = append(rows, finding{name, "TLS", markOK, version + ", sslmode " + sslMode(cfg)})
	default:
		rows = append(rows, finding{name, "TLS", markOptional, "not encrypted: enable ssl on the server and use sslmode=verify-full in the DSN"})
	}
	return conn, rows
}

// sslMode says how cfg checks the server's certificate.
func sslMode(cfg *pgx.ConnConfig) string {
	switch {
	case cfg.TLSConfig == nil:
		return "disable"
	case cfg.TLSConfig.InsecureSkipVerify && cfg.TLSConfig.VerifyPeerCertificate == nil:
		return "require (the certificate is not checked: verify-full checks it)"
	case cfg.TLSConfig.InsecureSkipVerify:
		return "verify-ca"
	}
	return "verify-full"
}

// doctorPrimary checks what the writer, the logical stream and the classic
// numbers need on the primary.
func doctorPrimary(ctx context.Context, cfg *config) []finding {
	const name = "primary"
	conn, rows := doctorConnect(ctx, name, cfg.primary)
	if conn == nil {
		return rows
	}
	defer conn.Close(context.Background())
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var f struct {
		inRecovery, table, canCreate, usage, sel, ins, upd, pub, pubHasTable, replication, monitor bool
		walLevel                                                                                   string
		slotsUsed, slotsMax, sendersUsed, sendersMax                                               int
	}
	err := conn.QueryRow(qctx, `SELECT pg_is_in_recovery(),
		c.oid IS NOT NULL,
		has_database_privilege(current_database(), 'CREATE'),
		coalesce(has_schema_privilege(n.oid, 'USAGE'), false),
		coalesce(has_table_privilege(c.oid, 'SELECT'), false),
		coalesce(has_table_privilege(c.oid, 'INSERT'), false),
		coalesce(has_table_privilege(c.oid, 'UPDATE'), false),
		EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $3),
		EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $3 AND schemaname = $1 AND tablename = $2),
		(SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),
		pg_has_role('pg_monitor', 'MEMBER'),
		current_setting('wal_level'),
		(SELECT count(*) FROM pg_replication_slots)::int, current_setting('max_replication_slots')::int,
		(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')::int, current_setting('max_wal_senders')::int
		FROM (SELECT 1) one
		LEFT JOIN pg_namespace n ON n.nspname = $1
		LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = $2`,
		heartbeat.Schema, heartbeat.Table, heartbeat.Publication).Scan(
		&f.inRecovery, &f.table, &f.canCreate, &f.usage, &f.sel, &f.ins, &f.upd, &f.pub, &f.pubHasTable,
		&f.replication, &f.monitor, &f.walLevel, &f.slotsUsed, &f.slotsMax, &f.sendersUsed, &f.sendersMax)
	if err != nil {
		return append(rows, finding{name, "catalog", markFail, pgconf.Explain(name, cfg.primary, err).Error()})
	}
	user := cfg.primary.User
	add := func(check string, ok bool, okDetail, fix string) {
		if ok {
			rows = append(rows, finding{name, check, markOK, okDetail})
		} else {
			rows = append(rows, finding{name, check, markFail, fix})
		}
	}
	add("read-write (not in recovery)", !f.inRecovery, "pg_is_in_recovery() is false",
		"this server is a standby: point --primary at the read-write server, or list every host with target_session_attrs=read-write")
	setupFix := fmt.Sprintf("run as an administrator: walprobe setup --primary ADMIN_DSN --role %s (or the SQL of walprobe setup --print-sql --role %s)", user, user)
	switch {
	case f.table:
		rows = append(rows, finding{name, "heartbeat table", markOK, heartbeat.QualTable + " exists"})
		var missing []string
		for _, p := range []struct {
			ok   bool
			what string
		}{{f.usage, "USAGE on schema " + heartbeat.Schema}, {f.sel, "SELECT"}, {f.ins, "INSERT"}, {f.upd, "UPDATE"}} {
			if !p.ok {
				missing = append(missing, p.what)
			}
		}
		add("role and grants", len(missing) == 0, fmt.Sprintf("%s may write %s", user, heartbeat.QualTable),
			fmt.Sprintf("%s lacks %s: run as an administrator: %s", user, strings.Join(missing, ", "), strings.Join(heartbeat.GrantSQL(user), "; ")))
	case f.canCreate:
		rows = append(rows, finding{name, "heartbeat table", markOK, fmt.Sprintf("%s is missing; run creates it (%s may create schemas)", heartbeat.QualTable, user)})
	default:
		rows = append(rows, finding{name, "heartbeat table", markFail, heartbeat.QualTable + " is missing and " + user + " may not create it: " + setupFix})
	}
	if !cfg.stream {
		return append(rows, primaryClassic(name, user, f.monitor))
	}
	pubFix := fmt.Sprintf("as an administrator: CREATE PUBLICATION %s FOR TABLE %s (walprobe setup does it)", heartbeat.Publication, heartbeat.QualTable)
	if f.pub && !f.pubHasTable {
		pubFix = fmt.Sprintf("as an administrator: ALTER PUBLICATION %s ADD TABLE %s", heartbeat.Publication, heartbeat.QualTable)
	}
	if !f.table && f.canCreate {
		add("publication (stream)", true, "run creates "+heartbeat.Publication+" with the table", "")
	} else {
		add("publication (stream)", f.pubHasTable, heartbeat.Publication+" holds "+heartbeat.QualTable, pubFix)
	}
	add("wal_level (stream)", f.walLevel == "logical", "logical",
		fmt.Sprintf("wal_level is %s: ALTER SYSTEM SET wal_level = logical; then restart the server (or run with --no-stream)", f.walLevel))
	add("free replication slot (stream)", f.slotsUsed < f.slotsMax, fmt.Sprintf("%d of max_replication_slots %d used", f.slotsUsed, f.slotsMax),
		fmt.Sprintf("all %d slots are used: drop an unused one (pg_drop_replication_slot) or raise max_replication_slots and restart", f.slotsMax))
	senders := fmt.Sprintf("%d of max_wal_senders %d used", f.sendersUsed, f.sendersMax)
	if !f.monitor {
		senders += " (without pg_monitor, other roles' may not be counted)"
	}
	add("free WAL sender (stream)", f.sendersUsed < f.sendersMax, senders,
		fmt.Sprintf("all %d WAL senders are busy: raise max_wal_senders and restart", f.sendersMax))
	add("REPLICATION (stream)", f.replication, user+" has REPLICATION",
		fmt.Sprintf("run as an administrator: ALTER ROLE %s REPLICATION (or run with --no-stream)", heartbeat.QuoteIdent(user)))
	return append(rows, primaryClassic(name, user, f.monitor))
}

func primaryClassic(name, user string, monitor bool) finding {
	if monitor {
		return finding{name, "pg_monitor (classic numbers)", markOK, user + " is a member of pg_monitor"}
	}
	return finding{name, "pg_monitor (classic numbers)", markOptional, fmt.Sprintf("optional: GRANT pg_monitor TO %s shows pg_stat_replication's write/flush/replay_lag beside the true numbers", heartbeat.QuoteIdent(user))}
}

// doctorTarget checks what a reader needs on one target.
func doctorTarget(ctx context.Context, t targetSpec) []finding {
	conn, rows := doctorConnect(ctx, t.name, t.conn)
	if conn == nil {
		return rows
	}
	defer conn.Close(context.Background())
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var inRecovery bool
	if err := conn.QueryRow(qctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return append(rows, finding{t.name, "recovery state", markFail, pgconf.Explain(t.name, t.conn, err).Error()})
	}
	switch {
	case t.kind == probe.KindStandby && !inRecovery:
		rows = append(rows, finding{t.name, "recovery state", markFail, "not in recovery, so it is not a standby: list it with --endpoint if it is a read endpoint on a primary, or fix the DSN"})
	case t.kind == probe.KindSubscriber && inRecovery:
		rows = append(rows, finding{t.name, "recovery state", markFail, "in recovery: a logical subscriber is a read-write server; fix the DSN, or list it with --standby"})
	default:
		rows = append(rows, finding{t.name, "recovery state", markOK, fmt.Sprintf("%s (in recovery: %t)", t.kind, inRecovery)})
	}
	// The same session check the reader runs: version and read grant.
	_, err := probe.Preflight(qctx, t.name, t.kind, t.conn)
	switch {
	case errors.Is(err, probe.ErrWrongRole):
		// Said in the recovery state row.
	case err != nil:
		rows = append(rows, finding{t.name, "role and grants", markFail, err.Error()})
	default:
		rows = append(rows, finding{t.name, "role and grants", markOK, t.conn.User + " may read " + heartbeat.QualTable + " (once it is there)"})
	}
	reason, ok, err := probe.Diagnose(qctx, t.name, t.kind, conn)
	check := "heartbeat table"
	if t.kind == probe.KindSubscriber {
		check = "subscription membership"
	}
	switch {
	case err != nil:
		rows = append(rows, finding{t.name, check, markFail, pgconf.Explain(t.name, t.conn, err).Error()})
	case ok:
		rows = append(rows, finding{t.name, check, markOK, heartbeat.QualTable + " can show beats here"})
	default:
		rows = append(rows, finding{t.name, check, markFail, reason})
	}
	return rows
}
