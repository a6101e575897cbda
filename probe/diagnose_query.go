package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walprobe/walprobe/heartbeat"
)

// subDiag is what a reader keeps between diagnoses.
type subDiag struct {
	// blocked: the last diagnosis found the target unmeasurable or
	// waiting; every poll diagnoses again until it is not.
	blocked bool
	// cause is the last cause of lag reported (SetCause).
	cause string
	// at is when the last diagnosis ran.
	at time.Time
	// errors is each subscription's apply_error_count then.
	errors map[string]int64
}

// diagnoseEvery bounds how often a lagging subscriber is diagnosed.
func (r *Reader) diagnoseEvery() time.Duration { return max(2*r.cfg.Interval, 2*time.Second) }

// unmeasured is the reader's hook after each poll (reader.go): it
// diagnoses the target when the poll found no heartbeat table, when a
// subscriber shows no row, while the target is unmeasurable or waiting,
// and now and then while a subscriber lags (or shows no row); then it
// applies the verdict.
// It reports whether the poll's result is to be dropped: the target
// cannot be measured now (it then waits an interval, so a target in that
// state costs two cheap queries per interval).
func (r *Reader) unmeasured(ctx context.Context, pc *pgconn.PgConn, seq int64, err error) bool {
	d := &r.diag.sub
	noTable := err != nil && missingRelation(err)
	switch {
	case err != nil && !noTable:
		return false
	case noTable, d.blocked:
	case r.cfg.Kind == KindSubscriber && (seq == 0 || r.lagging()) && r.now().Sub(d.at) >= r.diagnoseEvery():
	default:
		if d.cause != "" && !r.lagging() {
			d.cause = ""
		}
		return false
	}
	f, ferr := r.facts(pc)
	if ferr != nil {
		// The poll's own result stands; a failed diagnosis teaches
		// nothing (a grant on a catalog view missing, a pooler).
		r.logger.Debug("diagnosis failed", "error", ferr.Error())
		return false
	}
	d.at = r.now()
	v := diagnose(f, d.errors)
	d.errors = errorCounts(f)
	switch v.kind {
	case unmeasurable, waiting:
		if v.kind == waiting {
			r.target.Waiting(v.reason)
		} else {
			r.target.Unmeasurable(v.reason)
		}
		d.blocked = true
		sleep(ctx, r.cfg.Interval)
		return true
	}
	if d.blocked {
		d.blocked = false
		r.target.Measurable()
	}
	if v.reason != d.cause {
		d.cause = v.reason
		r.target.SetCause(v.reason)
	} else if v.reason != "" {
		r.target.SetCause(v.reason) // the state may have changed since
	}
	return noTable
}

// lagging reports whether the target lags or stalls.
func (r *Reader) lagging() bool {
	st := r.target.State()
	return st == StateLagging || st == StateStalled
}

// missingRelation reports whether err is the heartbeat table or its schema
// missing (undefined_table, invalid_schema_name).
func missingRelation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000")
}

// factsSQL finds what diagnose needs in one statement. The subscription
// part reads only what any role may (pg_subscription without subconninfo,
// pg_subscription_rel, pg_stat_subscription).
const factsSQL = `SELECT to_regclass('` + heartbeat.QualTable + `') IS NOT NULL, pg_is_in_recovery(), current_database()`

const subFactsSQL = `SELECT to_regclass('` + heartbeat.QualTable + `') IS NOT NULL, pg_is_in_recovery(), current_database(),
  (SELECT coalesce(json_agg(json_build_object(
    'name', s.subname, 'enabled', s.subenabled, 'pubs', s.subpublications,
    'state', (SELECT r.srsubstate FROM pg_subscription_rel r WHERE r.srsubid = s.oid AND r.srrelid = to_regclass('` + heartbeat.QualTable + `')),
    'worker', EXISTS (SELECT 1 FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.relid IS NULL AND w.pid IS NOT NULL),
    'errors', %s) ORDER BY s.subname), '[]')
   FROM pg_subscription s WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()))`

// statsExpr reads apply_error_count (PostgreSQL 15+).
const statsExpr = `(SELECT st.apply_error_count FROM pg_stat_subscription_stats st WHERE st.subid = s.oid)`

// facts runs the diagnostic query on the session.
func (r *Reader) facts(pc *pgconn.PgConn) (targetFacts, error) {
	// context.Background, as in query: the socket deadline bounds it.
	return queryFacts(context.Background(), pc, r.cfg.Name, r.cfg.Kind)
}

// Diagnose runs, once on conn, the diagnosis a reader runs when a target
// shows no beats (walprobe doctor): ok is false, with the reason and the
// fix, when the target cannot show beats or shows them through a
// subscription that does not apply (disabled, no apply worker).
func Diagnose(ctx context.Context, name string, kind Kind, conn *pgx.Conn) (reason string, ok bool, err error) {
	f, err := queryFacts(ctx, conn.PgConn(), name, kind)
	if err != nil {
		return "", false, err
	}
	v := diagnose(f, nil)
	return v.reason, v.kind == measurable && v.reason == "", nil
}

// queryFacts runs the diagnostic query for a target called name.
func queryFacts(ctx context.Context, pc *pgconn.PgConn, name string, kind Kind) (targetFacts, error) {
	f := targetFacts{Name: name, Kind: kind}
	sql := factsSQL
	if kind == KindSubscriber {
		stats := "NULL::int8"
		if majorVersion(pc.ParameterStatus("server_version")) >= 15 {
			stats = statsExpr
		}
		sql = fmt.Sprintf(subFactsSQL, stats)
	}
	res := pc.Exec(ctx, sql)
	rs, err := res.ReadAll()
	if err != nil {
		return f, fmt.Errorf("diagnose: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Rows) != 1 || len(rs[0].Rows[0]) < 3 {
		return f, fmt.Errorf("diagnose: %w", errShape)
	}
	row := rs[0].Rows[0]
	f.Table, f.InRecovery, f.Database = string(row[0]) == "t", string(row[1]) == "t", string(row[2])
	if len(row) > 3 {
		if err := json.Unmarshal(row[3], &f.Subs); err != nil {
			return f, fmt.Errorf("diagnose: %w: %v", errShape, err)
		}
	}
	return f, nil
}

// majorVersion is the major version in a server_version parameter
// ("15.4 (Debian 15.4-1)", "10.23"); 0 when it cannot tell.
func majorVersion(v string) int {
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}
