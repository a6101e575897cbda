package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

// ReaderConfig configures one target's reader.
type ReaderConfig struct {
	Name     string
	Kind     Kind // standby, subscriber or endpoint
	Conn     *pgx.ConnConfig
	ProbeID  string
	Interval time.Duration
}

// Reader polls one target for the probe's heartbeat row and collects the
// classic numbers beside it. It holds one connection, runs only
// single-statement implicit transactions in simple protocol (safe through
// transaction-pooling poolers: no prepared statements, no session state),
// and polls fast only while a beat is outstanding.
type Reader struct {
	cfg    ReaderConfig
	p      *Probe
	target *Target
	logger *slog.Logger
	now    func() time.Time
	sched  *schedule
	sql    readerSQL
	polls  *atomic.Int64 // queries sent, shared by an endpoint's connections
	// prevStart is the start of the latest poll that answered. It
	// outlives a session: after a slow poll forced a reconnect, the first
	// poll on the new connection is bracketed from it, so the beats shown
	// across the gap are timed (with a wider bound), not lost.
	prevStart time.Time
	// server is the server behind an endpoint that answered this
	// connection's latest poll: its position drives the schedule.
	server string
	// diag is what the session checks and the diagnosis of a target that
	// shows no beats keep (admit.go, diagnose.go); Run's goroutine only.
	diag readerDiag
}

// lastSeen is the position this connection's schedule runs from: the
// target's, or for an endpoint the position of the server that answered
// this connection last.
func (r *Reader) lastSeen() int64 {
	if r.server != "" {
		if seq, ok := r.target.LastSeenOf(r.server); ok {
			return seq
		}
	}
	seq, _ := r.target.LastSeen()
	return seq
}

// NewReader validates cfg and registers the target with p.
func NewReader(cfg ReaderConfig, p *Probe, logger *slog.Logger) (*Reader, error) {
	switch cfg.Kind {
	case KindStandby, KindSubscriber, KindEndpoint:
	default:
		return nil, fmt.Errorf("target %q: unknown kind %q (want standby, subscriber or endpoint)", cfg.Name, cfg.Kind)
	}
	if cfg.Conn == nil {
		return nil, fmt.Errorf("target %q: DSN is required", cfg.Name)
	}
	if strings.ContainsRune(cfg.ProbeID, 0) {
		return nil, fmt.Errorf("target %q: probe id contains a NUL byte: use printable characters", cfg.Name)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = p.cfg.Interval
	}
	t, err := p.Register(cfg.Name, cfg.Kind)
	if err != nil {
		return nil, err
	}
	return &Reader{
		cfg:    cfg,
		p:      p,
		target: t,
		logger: logger.With("component", "reader", "target", cfg.Name, "kind", string(cfg.Kind)),
		now:    time.Now,
		sched:  newSchedule(cfg.Interval),
		sql:    newReaderSQL(cfg.Kind, cfg.ProbeID),
		polls:  new(atomic.Int64),
	}, nil
}

// Target returns the reader's target handle.
func (r *Reader) Target() *Target { return r.target }

// Polls returns how many queries the reader has sent (for benchmarks).
func (r *Reader) Polls() int64 { return r.polls.Load() }

// Run polls until ctx is done. Connection failures are states: the target
// goes down and the reader reconnects with capped, jittered backoff.
//
// A read endpoint runs one such loop per address its host resolves to,
// and discovers the servers behind each (see discover.go).
func (r *Reader) Run(ctx context.Context) error {
	if r.cfg.Kind == KindEndpoint {
		return r.runEndpoint(ctx)
	}
	return r.run(ctx)
}

// run is the reconnecting loop of one connection.
func (r *Reader) run(ctx context.Context) error {
	bo := pgconf.NewBackoff()
	var lastErr string
	for ctx.Err() == nil {
		conn, err := pgconf.Connect(ctx, r.cfg.Name, r.cfg.Conn)
		if err == nil {
			err = r.admit(ctx, conn) // admit.go
		}
		if err == nil {
			r.target.Connected()
			bo.Reset()
			lastErr = ""
			err = r.session(ctx, conn)
			closeConn(conn)
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errSlowPoll) {
				// The target answered too slowly, which is evidence of
				// lag, not of being unreachable: reconnect at once and
				// keep the bracket. Down only if the reconnect fails.
				r.target.PollFailed(err)
				continue
			}
			err = pgconf.Explain(r.cfg.Name, r.cfg.Conn, err)
		}
		if ctx.Err() != nil {
			return nil
		}
		r.target.Down(err)
		if err.Error() != lastErr {
			r.logger.Warn("target unreachable, retrying", "error", err.Error())
			lastErr = err.Error()
		}
		if !sleep(ctx, pgconf.NextRetry(bo, err)) {
			return nil
		}
	}
	return nil
}

// pollTimeout bounds one poll. A target that does not answer within it is
// not down: the connection is redialled and the target goes down only if
// that fails. It is long (a standby under heavy replay, a slow network, a
// pooler queueing the query all answer late), because a poll that answers
// late still times every beat it shows; the bracket is just wider.
func (r *Reader) pollTimeout() time.Duration { return max(3*r.cfg.Interval, 10*time.Second) }

// errSlowPoll is a poll that did not answer within the poll timeout.
var errSlowPoll = errors.New("poll: no reply in time")

// pollEvidence reports whether err is a poll that failed on a live
// connection for a reason that is itself evidence about the target, not a
// reason to call it unreachable: the server cancelled it (a recovery
// conflict on a standby, a statement timeout; pgconf.Cancelled). The
// bracket keeps its lower bound and widens; the state follows the lag.
func pollEvidence(pc *pgconn.PgConn, err error) bool {
	return !pc.IsClosed() && pgconf.Cancelled(err)
}

// session polls on one connection until it fails or ctx ends.
//
// The hot path is built for many targets per probe: queries go straight to
// pgconn with the probe id already in the SQL text (no argument
// interpolation, no pgx row machinery), the one row is parsed from its
// text bytes in place, and neither a context nor a timer is allocated per
// poll. The poll timeout is a deadline on the socket, and ctx is watched
// once per session.
func (r *Reader) session(ctx context.Context, conn *pgx.Conn) error {
	pc := conn.PgConn()
	nc := pc.Conn()
	// Ending ctx interrupts a poll in flight; the session then returns.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		lastClassic time.Time
		pollFor     int64 = -1 // seq of the beat the dense schedule runs for
		prevAt      time.Duration
	)
	poll := func(withClassic bool) error {
		start := r.now()
		if err := nc.SetDeadline(start.Add(r.pollTimeout())); err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if ctx.Err() != nil {
			// The deadline above may have replaced the one ctx set.
			return ctx.Err()
		}
		seq, server, err := r.query(pc, withClassic)
		end := r.now()
		if r.unmeasured(ctx, pc, seq, err) { // diagnose_query.go
			return nil
		}
		if err != nil {
			return err
		}
		if withClassic {
			lastClassic = start
		}
		var v Visibility
		var ok bool
		if r.sql.server {
			// Each server behind the endpoint keeps its own bracket.
			r.server = server
			v, ok = r.target.SeenFrom(server, seq, start, end)
		} else {
			lower := r.prevStart
			if lower.IsZero() {
				lower = start
			}
			r.prevStart = start
			v, ok = r.target.Seen(seq, lower, end)
		}
		if ok {
			r.sched.observe(v.Delay, v.ErrorBound, v.Beat.RTT())
		}
		return nil
	}
	// wait sleeps for d, or until ctx ends or wake (may be nil) fires; it
	// reports whether d elapsed.
	wait := func(d time.Duration, wake <-chan struct{}) (elapsed, live bool) {
		timer.Reset(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false, false
		case <-wake:
			timer.Stop()
			return false, true
		case <-timer.C:
			return true, true
		}
	}
	// The classic numbers ride on a beat's first poll: they are due a
	// quarter interval early so the writer's jitter does not cost a poll
	// of its own. While no beat comes (the primary is down or idle) they
	// are refreshed on their own, every interval and a half.
	classicSlack := r.cfg.Interval / 4
	// failed handles a poll that did not answer: evidence on a live
	// connection (poll again after a pause), else the session's end.
	failed := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		if pollEvidence(pc, err) {
			r.target.PollFailed(err)
			if _, live := wait(max(r.cfg.Interval/10, 10*time.Millisecond), nil); !live {
				return nil
			}
			return nil
		}
		return r.pollErr(ctx, err)
	}
	// The first poll places a target that is new or was down: beats it
	// already shows are not timed.
	if err := poll(true); err != nil {
		if err := failed(err); err != nil || ctx.Err() != nil {
			return err
		}
	}
	for {
		// Beats a poll showed before their acks landed are timed from
		// that poll, without another one.
		r.target.TimeAhead()
		seen := r.lastSeen()
		beat, outstanding := r.p.ring.FirstAfter(seen)
		sinceClassic := r.now().Sub(lastClassic)
		if !outstanding {
			// Idle: nothing to time. Wake for the next beat, or to refresh
			// the classic numbers (which also notices a promotion).
			pollFor = -1
			wake := r.p.beatSignal()
			if _, ok := r.p.ring.FirstAfter(seen); ok {
				continue // a beat landed between the check and the wait
			}
			elapsed, live := wait(max(r.cfg.Interval+r.cfg.Interval/2-sinceClassic, 0), wake)
			if !live {
				return nil
			}
			if elapsed {
				if err := poll(true); err != nil {
					if err := failed(err); err != nil || ctx.Err() != nil {
						return err
					}
				}
			}
			continue
		}
		if beat.Seq != pollFor {
			pollFor, prevAt = beat.Seq, -1
		}
		at := r.sched.nextPoll(prevAt, beat.RTT())
		if d := beat.Acked.Add(at).Sub(r.now()); d > 0 {
			if _, live := wait(d, nil); !live {
				return nil
			}
		}
		// The real start, not the plan: a reader behind its plan (a slow
		// poll, a beat acked long ago) backs off from where it is.
		prevAt = r.now().Sub(beat.Acked)
		if err := poll(sinceClassic >= r.cfg.Interval-classicSlack); err != nil {
			if err := failed(err); err != nil || ctx.Err() != nil {
				return err
			}
		}
	}
}

// pollErr turns a failed poll into the session's result: nil when ctx
// ended (the deadline ctx set interrupted the poll), else the error, with
// a socket deadline named as the timeout it is.
func (r *Reader) pollErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (%v): the target is slow, reconnecting: %w", errSlowPoll, r.pollTimeout(), err)
	}
	return err
}

// pollSQL reads the probe's heartbeat row; %s is the probe id literal.
const pollSQL = `SELECT seq FROM ` + heartbeat.QualTable + ` WHERE probe_id = %s`

// standbySQL is one poll plus the classic numbers. The exporter-style
// column is the CASE expression common exporters use: it reads 0 whenever
// receive and replay LSNs match, which is exactly the case while the WAL
// receiver is cut off.
const standbySQL = `SELECT (` + pollSQL + `),
  pg_is_in_recovery(),
  extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
  (CASE WHEN NOT pg_is_in_recovery() THEN 0
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
        ELSE GREATEST(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())) END)::float8,
  pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8,
  (SELECT status FROM pg_stat_wal_receiver LIMIT 1)`

const subscriberSQL = `SELECT (` + pollSQL + `),
  extract(epoch FROM now() - max(last_msg_receipt_time))::float8,
  extract(epoch FROM now() - max(last_msg_send_time))::float8,
  extract(epoch FROM now() - max(latest_end_time))::float8,
  count(pid)
FROM pg_stat_subscription`

// serverSQL names the server that answered, as address:port: behind a
// pooler or load balancer, which backend this poll reached. A Unix-socket
// session has no address: it reads "local".
const serverSQL = `coalesce(host(inet_server_addr()), 'local') || ':' || coalesce(inet_server_port()::text, current_setting('port'))`

// quoteLiteral returns s as an escape-string literal, which means the same
// whatever standard_conforming_strings is set to.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `''`)
	return `E'` + s + `'`
}

// readerSQL holds one reader's statements with its probe id filled in.
type readerSQL struct {
	poll, classic string
	columns       int // columns of the classic row, without the server
	// server: an endpoint's statements end with a column naming the
	// server that answered (serverSQL).
	server bool
}

func newReaderSQL(kind Kind, probeID string) readerSQL {
	lit := quoteLiteral(probeID)
	q := readerSQL{poll: fmt.Sprintf(pollSQL, lit)}
	switch kind {
	case KindSubscriber:
		q.classic, q.columns = fmt.Sprintf(subscriberSQL, lit), 5
	case KindEndpoint:
		q.poll = `SELECT (` + q.poll + `), ` + serverSQL
		q.classic, q.columns, q.server = fmt.Sprintf(standbySQL, lit)+`, `+serverSQL, 6, true
	default:
		q.classic, q.columns = fmt.Sprintf(standbySQL, lit), 6
	}
	return q
}

// errShape reports a reply that is not the one row the statement returns
// (a misbehaving pooler or proxy in between).
var errShape = errors.New("unexpected reply shape")

// query runs one poll and returns the seq the target shows (0 when the
// row does not exist there yet).
func (r *Reader) query(pc *pgconn.PgConn, withClassic bool) (int64, string, error) {
	r.polls.Add(1)
	sql := r.sql.poll
	if withClassic {
		sql = r.sql.classic
	}
	var (
		seq    int64
		rows   int
		c      Classic
		perr   error
		server string
	)
	// context.Background, exactly: pgconn then watches no context (the
	// socket deadline bounds the poll).
	mrr := pc.Exec(context.Background(), sql)
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			rows++
			if rows > 1 || perr != nil {
				continue
			}
			vals := rr.Values()
			if r.sql.server && len(vals) > 1 {
				server = string(vals[len(vals)-1])
				vals = vals[:len(vals)-1]
			}
			if !withClassic {
				if len(vals) != 1 {
					perr = fmt.Errorf("%w: %d columns, want 1", errShape, len(vals))
					continue
				}
				seq, perr = parseSeq(vals[0])
				continue
			}
			seq, c, perr = r.parseClassic(vals)
		}
		if _, err := rr.Close(); err != nil && perr == nil {
			perr = err
		}
	}
	if err := mrr.Close(); err != nil {
		return 0, "", fmt.Errorf("poll: %w", err)
	}
	if perr != nil {
		return 0, "", fmt.Errorf("poll: %w", perr)
	}
	if rows > 1 {
		return 0, "", fmt.Errorf("poll: %w: %d rows, want at most 1", errShape, rows)
	}
	if r.sql.server && server == "" {
		return 0, "", fmt.Errorf("poll: %w: no server column", errShape)
	}
	if !withClassic {
		return seq, server, nil
	}
	if rows != 1 {
		return 0, "", fmt.Errorf("poll: %w: no row for the classic numbers", errShape)
	}
	c.At = r.now()
	if r.cfg.Kind == KindStandby && c.InRecovery != nil {
		if *c.InRecovery {
			r.target.InRecovery()
		} else {
			r.target.Promoted()
		}
	}
	r.target.SetClassic(c)
	return seq, server, nil
}

// parseClassic parses the classic row (standbySQL or subscriberSQL).
func (r *Reader) parseClassic(vals [][]byte) (int64, Classic, error) {
	var c Classic
	if len(vals) != r.sql.columns {
		return 0, c, fmt.Errorf("%w: %d columns, want %d", errShape, len(vals), r.sql.columns)
	}
	seq, err := parseSeq(vals[0])
	if err != nil {
		return 0, c, err
	}
	var errs [5]error
	if r.cfg.Kind == KindSubscriber {
		c.SubscriptionReceiptAge, errs[0] = parseSecs(vals[1])
		c.SubscriptionSendAge, errs[1] = parseSecs(vals[2])
		c.SubscriptionEndAge, errs[2] = parseSecs(vals[3])
		c.SubscriptionWorkers, errs[3] = parseInt(vals[4])
		return seq, c, errors.Join(errs[:]...)
	}
	switch string(vals[1]) {
	case "t":
		c.InRecovery = new(true)
	case "f":
		c.InRecovery = new(false)
	default:
		errs[0] = fmt.Errorf("%w: pg_is_in_recovery() = %q", errShape, vals[1])
	}
	c.ReplayTimestampAge, errs[1] = parseSecs(vals[2])
	c.ExporterLag, errs[2] = parseSecs(vals[3])
	c.ReceiveReplayGapBytes, errs[3] = parseInt(vals[4])
	if vals[5] != nil {
		c.ReceiverStatus = new(string(vals[5]))
	}
	return seq, c, errors.Join(errs[:]...)
}

// parseSeq parses the heartbeat seq column; NULL (no row yet) is 0.
func parseSeq(b []byte) (int64, error) {
	if b == nil {
		return 0, nil
	}
	n, ok := atoi(b)
	if !ok {
		return 0, fmt.Errorf("%w: seq %q", errShape, b)
	}
	return n, nil
}

func parseInt(b []byte) (*int64, error) {
	if b == nil {
		return nil, nil
	}
	n, ok := atoi(b)
	if !ok {
		return nil, fmt.Errorf("%w: integer %q", errShape, b)
	}
	return &n, nil
}

// parseSecs parses seconds (a float8 column as text); nil is NULL.
func parseSecs(b []byte) (*time.Duration, error) {
	if b == nil {
		return nil, nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return nil, fmt.Errorf("%w: number %q", errShape, b)
	}
	return durationPtr(fromSeconds(f)), nil
}

// atoi parses a decimal int64 without allocating.
func atoi(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// Clear the poll deadline (or the one ctx set) so Terminate can go out.
	_ = c.PgConn().Conn().SetDeadline(time.Time{})
	_ = c.Close(ctx)
}

// sleep waits for d or ctx; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fsecs turns seconds scanned from a nullable float8 into a duration;
// nil stays nil (NULL: not known).
func fsecs(f *float64) *time.Duration {
	if f == nil {
		return nil
	}
	return durationPtr(fromSeconds(*f))
}
