package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

// MinInterval is the shortest beat interval supported.
const MinInterval = 100 * time.Millisecond

// WriterConfig configures a Writer.
type WriterConfig struct {
	Conn     *pgx.ConnConfig // primary; from pgconf.Parse
	ProbeID  string
	Interval time.Duration
	// OnBeat is called, in seq order, after each successful write.
	OnBeat func(Beat)
	// OnMiss is called for every interval in which no beat could be written,
	// with when the attempt started and why it failed.
	OnMiss func(at time.Time, err error)
	// OnConn is called when the writer's connection comes up (err == nil)
	// or is lost or cannot be made (err != nil).
	OnConn func(err error)
	// OnConflict is called when another writer is found sharing the
	// probe's heartbeat row (err is a *ProbeIDConflictError) and when, after
	// 10 beats without a sign of it, it is gone (err == nil): once per
	// episode, not per beat. The beats written meanwhile still go to OnBeat.
	OnConflict func(err error)
}

// Writer upserts the probe's heartbeat row on the primary every interval.
type Writer struct {
	cfg    WriterConfig
	logger *slog.Logger
	now    func() time.Time
	paused atomic.Bool
	// lastSeq is the seq of the last acked beat; only Run's goroutine
	// touches it.
	lastSeq int64
	// watch checks the seqs of beats on one connection for another
	// writer's; only Run's goroutine touches it.
	watch seqWatch
}

// SetPaused stops (true) or resumes (false) writing beats without counting
// misses: the primary is idle as far as walprobe is concerned. The demo
// and tests use it to show an idle primary.
func (w *Writer) SetPaused(v bool) { w.paused.Store(v) }

// NewWriter validates cfg.
func NewWriter(cfg WriterConfig, logger *slog.Logger) (*Writer, error) {
	var errs []error
	if cfg.Conn == nil {
		errs = append(errs, errors.New("writer: primary DSN is required"))
	}
	if cfg.ProbeID == "" {
		errs = append(errs, errors.New("writer: probe_id is required"))
	}
	if cfg.Interval < MinInterval {
		errs = append(errs, fmt.Errorf("writer: interval %s is below the minimum %s", cfg.Interval, MinInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.OnBeat == nil {
		cfg.OnBeat = func(Beat) {}
	}
	if cfg.OnMiss == nil {
		cfg.OnMiss = func(time.Time, error) {}
	}
	if cfg.OnConn == nil {
		cfg.OnConn = func(error) {}
	}
	if cfg.OnConflict == nil {
		cfg.OnConflict = func(error) {}
	}
	return &Writer{
		cfg:    cfg,
		logger: logger.With("component", "writer"),
		now:    time.Now,
		watch:  seqWatch{probeID: cfg.ProbeID, primary: pgconf.Addr(cfg.Conn)},
	}, nil
}

// UpsertSQL is the plain form of the beat upsert ($1 = probe_id): seq is
// assigned by the database, so it stays monotonic across restarts of the
// probe. The Writer does not run it: it runs upsertAfterSQL, which also
// keeps seq growing across a failover. It is kept for writing beats by
// hand (test/e2e's table-bloat test hammers the table with it). RETURNING
// runs after the row change is in WAL, so pg_current_wal_insert_lsn() is
// the position just past it; the commit record follows immediately.
const UpsertSQL = `INSERT INTO ` + QualTable + ` AS h (probe_id, seq, written_at)
VALUES ($1, 1, clock_timestamp())
ON CONFLICT (probe_id) DO UPDATE SET seq = h.seq + 1, written_at = EXCLUDED.written_at
RETURNING seq, written_at, pg_current_wal_insert_lsn()::text`

// upsertAfterSQL, the statement the Writer runs for every beat, is
// UpsertSQL that never goes back below $2, the last seq
// this writer had acked. After a failover the promoted server's row lags
// the old primary's by the beats written there but never replicated; seq
// must still grow, or the probe's history (kept in seq order) would see
// beats from the past and every target's lag would be computed against
// beats that no longer exist. On one connection it therefore returns
// exactly $2+1 unless another writer wrote the row since: seqWatch relies
// on that to notice two probes sharing a probe_id.
//
// The last column is the row's seq before this write: the subquery runs
// in the statement's snapshot, which does not see the statement's own
// change. Below $2, the beats in (it, $2] were acked by a server whose
// history this one does not have (a failover lost them): see Beat.Lost.
const upsertAfterSQL = `INSERT INTO ` + QualTable + ` AS h (probe_id, seq, written_at)
VALUES ($1, $2::bigint + 1, clock_timestamp())
ON CONFLICT (probe_id) DO UPDATE SET seq = GREATEST(h.seq, $2::bigint) + 1, written_at = EXCLUDED.written_at
RETURNING seq, written_at, pg_current_wal_insert_lsn()::text,
  coalesce((SELECT p.seq FROM ` + QualTable + ` p WHERE p.probe_id = $1), 0)`

// Run writes beats until ctx is done. A primary that is down or in
// recovery is retried with capped, jittered backoff; every interval
// without a beat is reported through OnMiss.
func (w *Writer) Run(ctx context.Context) error {
	bo := pgconf.NewBackoff()
	ticker := time.NewTicker(w.cfg.Interval)
	defer ticker.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	var nextDial time.Time
	// connErr is why there is no connection: what each missed beat says.
	connErr := errors.New("primary unreachable")
	for {
		start := w.now()
		if w.paused.Load() {
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
				continue
			}
		}
		if conn == nil && !start.Before(nextDial) {
			c, err := w.connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				w.cfg.OnConn(err)
				connErr = err
				nextDial = start.Add(pgconf.NextRetry(bo, err))
			} else {
				conn = c
				bo.Reset()
				// A new connection may jump legitimately: GREATEST
				// after a failover, or a restart of the probe.
				w.watch.forget()
				w.cfg.OnConn(nil)
				w.logger.Info("writing beats", "server", c.PgConn().Conn().RemoteAddr().String())
				// A connect that tried a dead host first can take
				// several intervals: none of them had a beat.
				if n := int(w.now().Sub(start) / w.cfg.Interval); n > 0 {
					w.miss(start, n, errors.New("connecting to the primary"))
				}
			}
		}
		if conn == nil {
			w.miss(start, w.intervalsSince(start), connErr)
		} else if b, err := w.beat(ctx, conn); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.miss(start, w.intervalsSince(start), err)
			// The upsert may have committed before it failed: the
			// next seq proves nothing about another writer.
			w.watch.forget()
			if conn.IsClosed() || pgconf.NeedsReconnect(err) {
				closeConn(conn)
				conn = nil
				err = pgconf.Explain("primary", w.cfg.Conn, err)
				w.cfg.OnConn(err)
				nextDial = w.now().Add(bo.NextBackOff())
			}
			w.logger.LogAttrs(ctx, slog.LevelDebug, "beat failed", slog.String("error", err.Error()))
		} else {
			// The beat was written whoever else writes the row: record
			// it, then report a change of the shared-row state.
			w.cfg.OnBeat(b)
			if changed, err := w.watch.acked(b.Seq); changed {
				w.cfg.OnConflict(err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// intervalsSince is how many beat intervals an attempt that began at start
// used up: at least one. The ticker drops the ticks that fell while the
// attempt blocked (a connect timeout, a statement stuck behind a
// blackholed link) and keeps one, which starts the next attempt.
func (w *Writer) intervalsSince(start time.Time) int {
	return max(1, int(w.now().Sub(start)/w.cfg.Interval))
}

// miss reports n intervals without a beat, the first starting at start,
// so a writer blocked for seconds counts every beat it could not write.
func (w *Writer) miss(start time.Time, n int, err error) {
	for i := range n {
		w.cfg.OnMiss(start.Add(time.Duration(i)*w.cfg.Interval), err)
	}
}

func (w *Writer) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgconf.Connect(ctx, "primary", w.cfg.Conn)
	if err != nil {
		return nil, err
	}
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		closeConn(conn)
		return nil, pgconf.Explain("primary", w.cfg.Conn, err)
	}
	if inRecovery {
		closeConn(conn)
		return nil, fmt.Errorf("primary (%s) is in recovery: point --primary at the read-write server, or list every host with target_session_attrs=read-write: %w", pgconf.Addr(w.cfg.Conn), ErrInRecovery)
	}
	// A table or grant missing is the writer being down with the fix as
	// its reason, not a beat that failed: checked once per connection.
	if err := checkConn(ctx, conn, w.cfg.Conn); err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

func (w *Writer) beat(ctx context.Context, conn *pgx.Conn) (Beat, error) {
	ctx, cancel := context.WithTimeout(ctx, max(w.cfg.Interval, time.Second))
	defer cancel()
	var (
		b     Beat
		lsn   string
		prior int64
	)
	b.Sent = w.now()
	err := conn.QueryRow(ctx, upsertAfterSQL, w.cfg.ProbeID, w.lastSeq).Scan(&b.Seq, &b.PrimaryTime, &lsn, &prior)
	b.Acked = w.now()
	if err != nil {
		return Beat{}, fmt.Errorf("upsert beat: %w", err)
	}
	if b.LSN, err = ParseLSN(lsn); err != nil {
		return Beat{}, err
	}
	if w.lastSeq > 0 && prior < w.lastSeq {
		b.Lost = w.lastSeq - prior
	}
	w.lastSeq = b.Seq
	return b, nil
}

// Check verifies, once, that the primary is reachable, writable and set
// up. A missing table is created when the role may; otherwise the error
// wraps ErrNotSetUp and carries the exact SQL to run as an administrator.
func Check(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgconf.Connect(ctx, "primary", cfg)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	return checkConn(ctx, conn, cfg)
}

// checkConn is Check on an open connection. It also creates the
// walprobe_heartbeat publication when it is missing and the role may: the
// logical stream needs it, and a role that may create the table usually
// may create that too. A role that may not leaves it to the stream, which
// reports the publication missing with the SQL to run.
func checkConn(ctx context.Context, conn *pgx.Conn, cfg *pgx.ConnConfig) error {
	var inRecovery bool
	var reg *string
	// The catalog, not to_regclass: resolving the name needs USAGE on the
	// schema, and a role without it should hear which GRANT to run.
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), (SELECT c.relname::text FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)`, Schema, Table).Scan(&inRecovery, &reg); err != nil {
		return pgconf.Explain("primary", cfg, err)
	}
	if inRecovery {
		return fmt.Errorf("primary (%s) is in recovery: point --primary at the read-write server, or list every host with target_session_attrs=read-write: %w", pgconf.Addr(cfg), ErrInRecovery)
	}
	if reg == nil {
		for _, s := range TableSQL() {
			if _, err := conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("%w on %s and user %q cannot create it (%v); run as an administrator:\n\n%s\nor run `walprobe setup` with an administrator DSN",
					ErrNotSetUp, pgconf.Addr(cfg), cfg.User, pgErrMsg(err), Script(SetupSQL(SetupOptions{Role: cfg.User, Publication: true})))
			}
		}
		// CREATE ... IF NOT EXISTS skips an existing object without a
		// permission check: the privilege check below still has to run.
	}
	// has_table_privilege with a list is true when ANY listed privilege is
	// held: ask for each one, and for the schema, on its own.
	// The table is named by OID from the catalog: resolving its name
	// would itself fail without USAGE on the schema.
	var missing []string
	err := conn.QueryRow(ctx, `SELECT array_remove(ARRAY[
		CASE WHEN has_schema_privilege(n.oid, 'USAGE') THEN NULL ELSE 'USAGE on schema '||n.nspname END,
		CASE WHEN has_table_privilege(c.oid, 'SELECT') THEN NULL ELSE 'SELECT' END,
		CASE WHEN has_table_privilege(c.oid, 'INSERT') THEN NULL ELSE 'INSERT' END,
		CASE WHEN has_table_privilege(c.oid, 'UPDATE') THEN NULL ELSE 'UPDATE' END], NULL)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, Schema, Table).Scan(&missing)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w on %s: %s is missing; run `walprobe setup` with an administrator DSN", ErrNotSetUp, pgconf.Addr(cfg), QualTable)
	}
	if err != nil {
		return pgconf.Explain("primary", cfg, err)
	}
	if len(missing) > 0 {
		grants := SetupSQL(SetupOptions{Role: cfg.User})
		grants = grants[len(TableSQL()):]
		return fmt.Errorf("user %q may not write %s on %s (missing %s); run as an administrator: %s: %w",
			cfg.User, QualTable, pgconf.Addr(cfg), strings.Join(missing, ", "), strings.Join(grants, "; "), ErrNoPrivilege)
	}
	ensurePublication(ctx, conn)
	return nil
}

// ensurePublication creates the walprobe_heartbeat publication when it is
// missing; a role without the privilege leaves it missing (see checkConn).
// The statement is SetupSQL's, guarded so it is idempotent.
func ensurePublication(ctx context.Context, conn *pgx.Conn) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", Publication).Scan(&exists); err != nil || exists {
		return
	}
	stmts := SetupSQL(SetupOptions{Publication: true})
	_, _ = conn.Exec(ctx, stmts[len(stmts)-1])
}

func pgErrMsg(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	return err.Error()
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
