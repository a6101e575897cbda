package walstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

// bufferedRead: a ReceiveMessage that returns this fast took the message
// from pgconn's buffer; it had arrived with the read before.
const bufferedRead = 50 * time.Microsecond

// unconfirmedMax is how much received WAL may go unconfirmed before a
// status update is sent outside the beat/interval schedule: other probes
// writing the same table must not make the slot retain WAL.
const unconfirmedMax = 64 << 10

// Stream times every beat on the primary's logical replication stream.
type Stream struct {
	cfg    Config
	target Target
	logger *slog.Logger
	now    func() time.Time
	missed atomic.Int64
}

// New validates cfg and returns a Stream reporting to target.
func New(cfg Config, target Target, logger *slog.Logger) (*Stream, error) {
	err := cfg.Validate()
	if target == nil {
		err = errors.Join(err, errors.New("walstream: target is required"))
	}
	if err != nil {
		return nil, err
	}
	return &Stream{
		cfg:    cfg,
		target: target,
		logger: logger.With("component", "walstream", "target", target.Name()),
		now:    time.Now,
	}, nil
}

// Missed returns how many beats were never seen on the stream, counted by
// gaps in seq within one connection. Beats written while the stream was
// reconnecting are not counted: the new slot starts after them.
func (s *Stream) Missed() int64 { return s.missed.Load() }

// Run streams until ctx is done, reconnecting with pgconf.NewBackoff
// after any failure, and returns nil. Failures are reported through the
// target, and logged once per distinct error.
func (s *Stream) Run(ctx context.Context) error {
	bo := pgconf.NewBackoff()
	var lastErr string
	for {
		err := s.session(ctx, func() {
			bo.Reset()
			lastErr = ""
		})
		if ctx.Err() != nil {
			return nil
		}
		err = explain(s.target.Name(), s.cfg.Conn, err)
		s.target.Down(err)
		if msg := err.Error(); msg != lastErr {
			s.logger.LogAttrs(ctx, slog.LevelWarn, "stream down", slog.String("error", msg))
			lastErr = msg
		} else {
			s.logger.LogAttrs(ctx, slog.LevelDebug, "stream still down", slog.String("error", msg))
		}
		t := time.NewTimer(pgconf.NextRetry(bo, err))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session runs one replication connection from connect to failure or
// ctx's end. streaming is called once the slot streams.
func (s *Stream) session(ctx context.Context, streaming func()) error {
	pcfg := s.cfg.Conn.Config.Copy()
	pcfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer func() {
		// ctx may be done: close on a short context of its own. Ending the
		// walsender drops the temporary slot.
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := pglogrepl.IdentifySystem(ctx, conn); err != nil {
		return fmt.Errorf("identify system: %w", err)
	}
	if err := s.preflight(ctx, conn); err != nil {
		return err
	}
	slot := slotName(s.cfg.SlotPrefix, s.cfg.ProbeID)
	if _, err := pglogrepl.CreateReplicationSlot(ctx, conn, slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Temporary:      true,
		Mode:           pglogrepl.LogicalReplication,
		SnapshotAction: "NOEXPORT_SNAPSHOT",
	}); err != nil {
		return fmt.Errorf("create slot %s: %w", slot, err)
	}
	pubs := "publication_names '" + strings.ReplaceAll(heartbeat.QuoteIdent(s.cfg.Publication), "'", "''") + "'"
	if err := pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", pubs},
	}); err != nil {
		return fmt.Errorf("start replication on slot %s: %w", slot, err)
	}
	s.logger.LogAttrs(ctx, slog.LevelInfo, "streaming", slog.String("slot", slot), slog.String("publication", s.cfg.Publication))
	s.target.Connected()
	streaming()
	return s.stream(ctx, conn)
}

// preflight checks wal_level and the publication before a slot is made, so
// their errors say what to fix rather than what failed.
func (s *Stream) preflight(ctx context.Context, conn *pgconn.PgConn) error {
	where := fmt.Sprintf("%s (%s)", s.target.Name(), addr(s.cfg))
	res, err := conn.Exec(ctx, "SHOW wal_level").ReadAll()
	if err != nil {
		return fmt.Errorf("show wal_level: %w", err)
	}
	if lvl := firstValue(res); lvl != "logical" {
		return walLevelError(where, fmt.Errorf("wal_level is %q", lvl))
	}
	// Parameters need the extended protocol, which a walsender refuses:
	// quote the name as a literal instead.
	lit := "'" + strings.ReplaceAll(s.cfg.Publication, "'", "''") + "'"
	res, err = conn.Exec(ctx, `SELECT (SELECT count(*) FROM pg_publication WHERE pubname = `+lit+`)::text || ','
    || (SELECT count(*) FROM pg_publication_tables WHERE pubname = `+lit+`
        AND schemaname = '`+heartbeat.Schema+`' AND tablename = '`+heartbeat.Table+`')::text`).ReadAll()
	if err != nil {
		return fmt.Errorf("check publication %s: %w", s.cfg.Publication, err)
	}
	switch firstValue(res) {
	case "1,1":
		return nil
	case "1,0":
		return &setupError{
			msg: fmt.Sprintf("%s: publication %q does not include %s: as an administrator run `ALTER PUBLICATION %s ADD TABLE %s`",
				where, s.cfg.Publication, heartbeat.QualTable, heartbeat.QuoteIdent(s.cfg.Publication), heartbeat.QualTable),
			kind: ErrNoPublication, err: ErrNoPublication,
		}
	}
	return &setupError{
		msg:  fmt.Sprintf("%s: publication %q does not exist: %s", where, s.cfg.Publication, publicationFix(s.cfg.Publication)),
		kind: ErrNoPublication, err: ErrNoPublication,
	}
}

func firstValue(res []*pgconn.Result) string {
	if len(res) == 0 || len(res[0].Rows) == 0 || len(res[0].Rows[0]) == 0 {
		return ""
	}
	return string(res[0].Rows[0][0])
}

// stream reads the replication stream until it fails or ctx ends.
func (s *Stream) stream(ctx context.Context, conn *pgconn.PgConn) error {
	st := session{dec: decoder{probeID: s.cfg.ProbeID}}
	nextStatus := s.now().Add(s.cfg.StatusInterval)
	for {
		if !s.now().Before(nextStatus) {
			if err := st.confirm(ctx, conn); err != nil {
				return err
			}
			nextStatus = s.now().Add(s.cfg.StatusInterval)
		}
		rctx, cancel := context.WithDeadline(ctx, nextStatus)
		called := s.now()
		msg, err := conn.ReceiveMessage(rctx)
		// Read the clock before anything else: this is when the beat
		// reached the probe. time.Now keeps the monotonic reading.
		received := s.now()
		cancel()
		// When the message reached the probe. A call that waited for the
		// socket returns as it arrives: exact. A call that returned at
		// once took it from what an earlier read had already buffered:
		// it arrived after the latest read that waited (messages arrive
		// in order) and before this call, so it is bracketed by them.
		if received.Sub(called) > bufferedRead || st.arrivedAfter.IsZero() {
			st.arrivedAfter = received
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive: %w", err)
		}
		var cd *pgproto3.CopyData
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			cd = msg
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(msg)
		case *pgproto3.CopyDone:
			return errors.New("server ended the replication stream")
		default:
			continue // notices, parameter status
		}
		if len(cd.Data) == 0 {
			continue
		}
		switch cd.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(cd.Data[1:])
			if err != nil {
				return fmt.Errorf("parse keepalive: %w", err)
			}
			if !st.dec.inTxn {
				st.advance(ka.ServerWALEnd)
			}
			// Answering a keepalive that moved us on is what lets an idle
			// slot advance past WAL the publication does not carry.
			if ka.ReplyRequested || st.pos > st.reported {
				if err := st.confirm(ctx, conn); err != nil {
					return err
				}
				nextStatus = s.now().Add(s.cfg.StatusInterval)
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				return fmt.Errorf("parse xlogdata: %w", err)
			}
			if len(xld.WALData) == 0 {
				continue
			}
			m, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				// A message this pgoutput version sends that the decoder
				// does not know; it cannot be one of ours.
				s.logger.LogAttrs(ctx, slog.LevelDebug, "undecodable message", slog.String("error", err.Error()))
				continue
			}
			bc, ok := st.dec.handle(m)
			// Confirm exactly what was received: a Commit carries the end
			// of its transaction; any other message outside a transaction
			// starts at WALStart. WALStart+len(WALData), the usual
			// shortcut, overshoots the server's own insert position.
			if c, isCommit := m.(*pglogrepl.CommitMessage); isCommit {
				st.advance(c.TransactionEndLSN)
			} else if !st.dec.inTxn {
				st.advance(xld.WALStart)
			}
			if ok {
				s.beat(ctx, &st, bc, xld.ServerTime, st.arrivedAfter, received)
			}
			if ok || st.pos-st.reported > unconfirmedMax {
				if err := st.confirm(ctx, conn); err != nil {
					return err
				}
				nextStatus = s.now().Add(s.cfg.StatusInterval)
			}
		}
	}
}

// beat reports one committed beat to the target, received in
// (after, received]. It never waits for the writer's ack: a beat the
// stream sees first is held by the target with its bracket and timed when
// the ack lands (probe.Target.Seen), so the read loop times every message
// when it arrives.
func (s *Stream) beat(ctx context.Context, st *session, bc beatCommit, sent, after, received time.Time) {
	if st.haveLast {
		if bc.Seq <= st.last {
			// Replayed or reset row: never report a stale seq.
			s.logger.LogAttrs(ctx, slog.LevelDebug, "stale seq", slog.Int64("seq", bc.Seq), slog.Int64("last", st.last))
			return
		}
		if gap := bc.Seq - st.last - 1; gap > 0 {
			s.missed.Add(gap)
			s.logger.LogAttrs(ctx, slog.LevelDebug, "beats missing from the stream", slog.Int64("after", st.last), slog.Int64("count", gap))
		}
	}
	st.last, st.haveLast = bc.Seq, true
	s.target.Streamed(bc.Seq, after, heartbeat.StreamStages{Seq: bc.Seq, Commit: bc.Commit, ServerSent: sent, Received: received})
}

// session is the position state of one replication connection.
type session struct {
	dec      decoder
	pos      pglogrepl.LSN // everything up to here is received and may be confirmed
	reported pglogrepl.LSN // last position sent in a status update
	last     int64         // last beat seq seen on this connection; valid when haveLast
	haveLast bool
	// arrivedAfter is a moment before which the latest message had not
	// reached the probe: the lower end of its receive bracket.
	arrivedAfter time.Time
}

func (st *session) advance(lsn pglogrepl.LSN) {
	if lsn > st.pos {
		st.pos = lsn
	}
}

// confirm sends a standby status update for everything received. The
// temporary slot is never restarted from, so confirming on receipt is safe.
func (st *session) confirm(ctx context.Context, conn *pgconn.PgConn) error {
	if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: st.pos,
		WALFlushPosition: st.pos,
		WALApplyPosition: st.pos,
	}); err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	st.reported = st.pos
	return nil
}
