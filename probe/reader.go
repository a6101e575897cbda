package probe

// reader.go is one state machine and stays one file (~450 lines): the
// session loop's schedule, brackets and reconnects share its local state.
// The statements and their parsing are in poll.go.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
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
	// servers are the servers behind an endpoint that answered this
	// connection, with when each last did (nil for other kinds): the
	// connection polls until every one that answered recently shows a beat.
	servers map[string]time.Time
	// diag is what the session checks and the diagnosis of a target that
	// shows no beats keep (admit.go, diagnose.go); Run's goroutine only.
	diag readerDiag
}

// eachPosition calls fn with the seq shown by each server that answered
// this connection within the backend window; for a standby, a subscriber,
// or an endpoint connection that has not placed a server yet, once with
// the target's position.
func (r *Reader) eachPosition(fn func(seq int64)) {
	now, window := r.now(), r.p.backendWindow()
	placed := false
	for srv, at := range r.servers {
		if now.Sub(at) > window {
			delete(r.servers, srv) // it left this connection's rotation
			continue
		}
		if seq, ok := r.target.LastSeenOf(srv); ok {
			fn(seq)
			placed = true
		}
	}
	if !placed {
		seq, _ := r.target.LastSeen()
		fn(seq)
	}
}

// seenFrom records an endpoint poll answered by server on this
// connection. Each server behind the endpoint keeps its own bracket.
func (r *Reader) seenFrom(server string, seq int64, start, end time.Time) (Visibility, bool) {
	if r.servers == nil {
		r.servers = map[string]time.Time{}
	}
	r.servers[server] = end
	return r.target.SeenFrom(server, seq, start, end)
}

// nextBeat returns the beat this connection polls for: the first one not
// shown by the most advanced server that has not shown every beat. On a
// pooler where every server keeps up, that is the newest beat until each
// server reached shows it, so all of them are polled densely around it and
// each is timed. A server still behind after the others caught up (a
// cut-off replica) is polled for its oldest unshown beat at the back-off
// rate, with behind set: a new beat then takes over at once.
//
// Following only the server that answered last, as the reader did before,
// a connection whose latest answer came from a caught-up server went idle
// until the next beat: behind pgpool-II, which sends the probe's classic
// query (volatile functions) to the primary, the standbys then got almost
// no polls, fell out of the backend window, and a cut-off standby left
// the endpoint healthy at lag 0 (TestEndpointTopologies/pgpool).
func (r *Reader) nextBeat() (beat heartbeat.Beat, outstanding, behind bool) {
	newest, ok := r.p.ring.Newest()
	if !ok {
		return heartbeat.Beat{}, false, false
	}
	var hi, out int64
	first, anyOut := true, false
	r.eachPosition(func(seq int64) {
		if first || seq > hi {
			hi, first = seq, false
		}
		if seq < newest.Seq && (!anyOut || seq > out) {
			out, anyOut = seq, true
		}
	})
	if !anyOut {
		return heartbeat.Beat{}, false, false
	}
	b, ok := r.p.ring.FirstAfter(out)
	return b, ok, ok && out < hi
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
		res, err := r.query(pc, withClassic)
		seq, server := res.seq, res.server
		end := r.now()
		if r.unmeasured(ctx, pc, seq, err) { // diagnose_query.go
			return nil
		}
		if err != nil {
			return err
		}
		if res.posOK {
			// The server had replayed at least this when it answered, and
			// replay only moves forward: true from end on.
			r.target.setPosition(server, res.pos, end)
		}
		if withClassic {
			lastClassic = start
		}
		var v Visibility
		var ok bool
		if r.sql.server {
			v, ok = r.seenFrom(server, seq, start, end)
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
	// A poke (a client waiting for this target to reach a position, see
	// eligible.go) ends any wait early, like the timer.
	poked := r.target.poked()
	wait := func(d time.Duration, wake <-chan struct{}) (elapsed, live bool) {
		timer.Reset(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false, false
		case <-wake:
			timer.Stop()
			return false, true
		case <-poked:
			timer.Stop()
			return true, true
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
		beat, outstanding, behind := r.nextBeat()
		sinceClassic := r.now().Sub(lastClassic)
		if !outstanding {
			// Idle: nothing to time. Wake for the next beat, or to refresh
			// the classic numbers (which also notices a promotion).
			pollFor = -1
			wake := r.p.beatSignal()
			if _, ok, _ := r.nextBeat(); ok {
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
		// Polling for a server that is behind must not delay the dense
		// polls of the next beat: a new beat ends the wait.
		var wake <-chan struct{}
		if behind {
			wake = r.p.beatSignal()
			if _, _, still := r.nextBeat(); !still {
				continue // a beat landed between the check and the wait
			}
		}
		if d := beat.Acked.Add(at).Sub(r.now()); d > 0 {
			elapsed, live := wait(d, wake)
			if !live {
				return nil
			}
			if !elapsed {
				continue
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
