package probe

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walprobe/walprobe/heartbeat"
)

// The statements a reader sends and the parsing of their one row: pure
// functions of the bytes PostgreSQL returned, tested without a server
// (reader_test.go). The hot path parses text in place, without pgx's row
// machinery.

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

// positionSQL is how far the server that answered has replayed the
// primary's WAL: a standby's replay position, or, for a primary behind an
// endpoint, its current position (it shows everything it wrote). Read in
// the same statement as the heartbeat row, so position and seq are one
// snapshot's.
const positionSQL = `(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text`

// readerSQL holds one reader's statements with its probe id filled in.
type readerSQL struct {
	poll, classic string
	columns       int // columns of the classic row, without the trailer
	// A standby's statements end with the replay position (positionSQL);
	// an endpoint's with the server that answered (serverSQL).
	position, server bool
}

func newReaderSQL(kind Kind, probeID string) readerSQL {
	lit := quoteLiteral(probeID)
	q := readerSQL{poll: fmt.Sprintf(pollSQL, lit)}
	switch kind {
	case KindSubscriber:
		q.classic, q.columns = fmt.Sprintf(subscriberSQL, lit), 5
	case KindEndpoint:
		// No replay position here: pgpool-II sends a statement that calls
		// a volatile function (pg_is_in_recovery, pg_last_wal_replay_lsn)
		// to the primary, and the servers behind it would go unpolled. An
		// endpoint's positions come from the beats each server shows.
		q.poll = `SELECT (` + q.poll + `), ` + serverSQL
		q.classic, q.columns = fmt.Sprintf(standbySQL, lit)+`, `+serverSQL, 6
		q.server = true
	default:
		q.poll = `SELECT (` + q.poll + `), ` + positionSQL
		q.classic, q.columns, q.position = fmt.Sprintf(standbySQL, lit)+`, `+positionSQL, 6, true
	}
	return q
}

// pollResult is what one poll read.
type pollResult struct {
	seq    int64
	server string // endpoints: the server that answered
	// pos is the answering server's replay position; posOK false when
	// the statement has none (subscribers) or it read NULL.
	pos   heartbeat.LSN
	posOK bool
}

// errShape reports a reply that is not the one row the statement returns
// (a misbehaving pooler or proxy in between).
var errShape = errors.New("unexpected reply shape")

// query runs one poll and returns the seq the target shows (0 when the
// row does not exist there yet).
func (r *Reader) query(pc *pgconn.PgConn, withClassic bool) (pollResult, error) {
	r.polls.Add(1)
	sql := r.sql.poll
	if withClassic {
		sql = r.sql.classic
	}
	var (
		res  pollResult
		seq  int64
		rows int
		c    Classic
		perr error
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
				res.server = string(vals[len(vals)-1])
				vals = vals[:len(vals)-1]
			}
			if r.sql.position && len(vals) > 1 {
				if b := vals[len(vals)-1]; b != nil {
					if lsn, err := heartbeat.ParseLSN(string(b)); err == nil {
						res.pos, res.posOK = lsn, true
					}
				}
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
	res.seq = seq
	if err := mrr.Close(); err != nil {
		return pollResult{}, fmt.Errorf("poll: %w", err)
	}
	if perr != nil {
		return pollResult{}, fmt.Errorf("poll: %w", perr)
	}
	if rows > 1 {
		return pollResult{}, fmt.Errorf("poll: %w: %d rows, want at most 1", errShape, rows)
	}
	if r.sql.server && res.server == "" {
		return pollResult{}, fmt.Errorf("poll: %w: no server column", errShape)
	}
	if !withClassic {
		return res, nil
	}
	if rows != 1 {
		return pollResult{}, fmt.Errorf("poll: %w: no row for the classic numbers", errShape)
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
	return res, nil
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
