package probe

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

// MinServerVersion is the oldest PostgreSQL walprobe supports (the
// pg_last_wal_* functions and pg_stat_replication's lag columns are 10+).
const MinServerVersion = 100000

// ErrWrongRole means a target is not what its flag says (a --standby that
// is not in recovery).
var ErrWrongRole = errors.New("target has the wrong server role")

// ErrTooOld means the server is older than MinServerVersion.
var ErrTooOld = errors.New("server too old")

// Preflight checks a target once at startup: reachable targets must be new
// enough, and a standby must be in recovery. An unreachable target is not
// an error here (it is reported down and retried); the returned bool says
// whether the target answered.
func Preflight(ctx context.Context, name string, kind Kind, cfg *pgx.ConnConfig) (bool, error) {
	conn, err := pgconf.Connect(ctx, name, cfg)
	if err != nil {
		if pgconf.Rejected(err) {
			return true, err
		}
		return false, nil
	}
	defer closeConn(conn)
	return true, checkSession(ctx, name, kind, cfg, conn, true)
}

// checkSession is Preflight on an open connection; checkRole says whether
// a standby that is not in recovery is the wrong role (at start-up) rather
// than a promotion (once it has been seen in recovery).
func checkSession(ctx context.Context, name string, kind Kind, cfg *pgx.ConnConfig, conn *pgx.Conn, checkRole bool) error {
	var version int
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, pg_is_in_recovery()").Scan(&version, &inRecovery); err != nil {
		return pgconf.Explain(name, cfg, err)
	}
	if version < MinServerVersion {
		return fmt.Errorf("%s (%s): PostgreSQL %d.%d is older than the supported minimum 10: %w", name, pgconf.Addr(cfg), version/10000, version%10000, ErrTooOld)
	}
	if checkRole && kind == KindStandby && !inRecovery {
		return fmt.Errorf("%s (%s) is not in recovery, so it is not a standby: list it with --endpoint if it is a read endpoint on a primary, or fix the DSN: %w", name, pgconf.Addr(cfg), ErrWrongRole)
	}
	// NULL when the table is not there (yet): a subscriber still syncing
	// is a state, not a start-up error. CASE evaluates in order, so the
	// table is only looked up when the schema may be used.
	var canRead *bool
	if err := conn.QueryRow(ctx, `SELECT CASE
		WHEN to_regnamespace($1) IS NULL THEN NULL
		WHEN NOT has_schema_privilege($1, 'USAGE') THEN false
		WHEN to_regclass($2) IS NULL THEN NULL
		ELSE has_table_privilege($2, 'SELECT') END`, heartbeat.Schema, heartbeat.QualTable).Scan(&canRead); err != nil {
		return pgconf.Explain(name, cfg, err)
	}
	if canRead != nil && !*canRead {
		return fmt.Errorf("%s (%s): user %q may not read %s: run as an administrator where the table is written (the primary, for a standby or an endpoint on one; the subscriber itself): GRANT USAGE ON SCHEMA %s TO %s; GRANT SELECT ON %s TO %s: %w",
			name, pgconf.Addr(cfg), cfg.User, heartbeat.QualTable, heartbeat.Schema, heartbeat.QuoteIdent(cfg.User), heartbeat.QualTable, heartbeat.QuoteIdent(cfg.User), heartbeat.ErrNoPrivilege)
	}
	return nil
}
