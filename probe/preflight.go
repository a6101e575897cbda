package probe

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/probe/pgconf"
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
		return false, nil
	}
	defer closeConn(conn)
	var version int
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, pg_is_in_recovery()").Scan(&version, &inRecovery); err != nil {
		return true, pgconf.Explain(name, cfg, err)
	}
	if version < MinServerVersion {
		return true, fmt.Errorf("%s (%s): PostgreSQL %d.%d is older than the supported minimum 10: %w", name, pgconf.Addr(cfg), version/10000, version%10000, ErrTooOld)
	}
	if kind == KindStandby && !inRecovery {
		return true, fmt.Errorf("%s (%s) is not in recovery, so it is not a standby: list it with --endpoint if it is a read endpoint on a primary, or fix the DSN: %w", name, pgconf.Addr(cfg), ErrWrongRole)
	}
	return true, nil
}
