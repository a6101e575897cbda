package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe/pgconf"
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
	polls  int64 // queries sent; only the Run goroutine touches it
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
	}, nil
}

// Target returns the reader's target handle.
func (r *Reader) Target() *Target { return r.target }

// Polls returns how many queries the reader has sent (for benchmarks; read
// it only after Run has returned).
func (r *Reader) Polls() int64 { return r.polls }

// Run polls until ctx is done. Connection failures are states: the target
// goes down and the reader reconnects with capped, jittered backoff.
func (r *Reader) Run(ctx context.Context) error {
	bo := heartbeat.NewBackoff()
	var lastErr string
	for ctx.Err() == nil {
		conn, err := pgconf.Connect(ctx, r.cfg.Name, r.cfg.Conn)
		if err == nil {
			r.target.Connected()
			bo.Reset()
			lastErr = ""
			err = r.session(ctx, conn)
			closeConn(conn)
			if ctx.Err() != nil {
				return nil
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
		if !sleep(ctx, bo.NextBackOff()) {
			return nil
		}
	}
	return nil
}

// session polls on one connection until it fails or ctx ends.
func (r *Reader) session(ctx context.Context, conn *pgx.Conn) error {
	var (
		prevStart   time.Time // start of the latest poll
		lastClassic time.Time
		pollFor     int64 = -1 // seq of the beat the dense schedule runs for
		prevAt      time.Duration
	)
	poll := func(withClassic bool) error {
		start := r.now()
		seq, err := r.query(ctx, conn, withClassic)
		end := r.now()
		if err != nil {
			return err
		}
		lower := prevStart
		if lower.IsZero() {
			lower = start
		}
		prevStart = start
		if withClassic {
			lastClassic = start
		}
		if v, ok := r.target.Seen(seq, lower, end); ok {
			r.sched.observe(v.Delay)
		}
		return nil
	}
	// The first poll places the target: beats it already shows are not timed.
	if err := poll(true); err != nil {
		return err
	}
	for {
		seen, _ := r.target.LastSeen()
		beat, outstanding := r.p.ring.FirstAfter(seen)
		classicDue := r.now().Sub(lastClassic) >= r.cfg.Interval
		if !outstanding {
			// Idle: nothing to time. Wake for the next beat, or to refresh
			// the classic numbers (which also notices a promotion).
			pollFor = -1
			wake := r.p.beatSignal()
			if _, ok := r.p.ring.FirstAfter(seen); ok {
				continue // a beat landed between the check and the wait
			}
			t := time.NewTimer(max(r.cfg.Interval-r.now().Sub(lastClassic), 0))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-wake:
				t.Stop()
				continue
			case <-t.C:
				if err := poll(true); err != nil {
					return err
				}
				continue
			}
		}
		if beat.Seq != pollFor {
			pollFor, prevAt = beat.Seq, -1
		}
		at := r.sched.nextPoll(prevAt)
		prevAt = at
		if wait := beat.Acked.Add(at).Sub(r.now()); wait > 0 {
			if !sleep(ctx, wait) {
				return nil
			}
		}
		if err := poll(classicDue); err != nil {
			return err
		}
	}
}

const pollSQL = `SELECT seq FROM ` + heartbeat.QualTable + ` WHERE probe_id = $1`

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

// query runs one poll and returns the seq the target shows (0 when the
// row does not exist there yet).
func (r *Reader) query(ctx context.Context, conn *pgx.Conn, withClassic bool) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, max(2*r.cfg.Interval, 2*time.Second))
	defer cancel()
	r.polls++
	var seq *int64
	if !withClassic {
		err := conn.QueryRow(ctx, pollSQL, r.cfg.ProbeID).Scan(&seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, nil
		}
		return deref(seq), wrapPoll(err)
	}
	c := Classic{At: r.now()}
	switch r.cfg.Kind {
	case KindSubscriber:
		var rec, send, end *float64
		var workers int64
		if err := conn.QueryRow(ctx, subscriberSQL, r.cfg.ProbeID).Scan(&seq, &rec, &send, &end, &workers); err != nil {
			return 0, wrapPoll(err)
		}
		c.SubscriptionReceiptAge, c.SubscriptionSendAge, c.SubscriptionEndAge = fsecs(rec), fsecs(send), fsecs(end)
		c.SubscriptionWorkers = &workers
	default:
		var inRec bool
		var age, exp *float64
		var gap *int64
		var status *string
		if err := conn.QueryRow(ctx, standbySQL, r.cfg.ProbeID).Scan(&seq, &inRec, &age, &exp, &gap, &status); err != nil {
			return 0, wrapPoll(err)
		}
		c.InRecovery, c.ReplayTimestampAge, c.ExporterLag, c.ReceiveReplayGapBytes, c.ReceiverStatus = &inRec, fsecs(age), fsecs(exp), gap, status
		if r.cfg.Kind == KindStandby {
			if inRec {
				r.target.InRecovery()
			} else {
				r.target.Promoted()
			}
		}
	}
	r.target.SetClassic(c)
	return deref(seq), nil
}

func wrapPoll(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("poll: %w", err)
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func fsecs(f *float64) *Seconds {
	if f == nil {
		return nil
	}
	s := Seconds(*f)
	return &s
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
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
