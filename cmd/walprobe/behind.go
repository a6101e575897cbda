package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

// A one-shot check times only the beats it writes itself, so on its own it
// can say no more than "not shown for as long as I waited": a standby
// hours behind would read as --critical, where the run stops waiting. The
// heartbeat rows say more. The primary's row, read before this run writes,
// holds the newest beat written before the run (by earlier runs, which
// pgpool makes every sr_check_period); a target that shows an older seq has
// not shown that beat either, so its lag is at least that beat's age. Its
// exact lag is the age of the first beat after the one it shows, and one
// row per probe id keeps no record of when that beat was written: the two
// bounds below are all that is knowable.

// row is one heartbeat row as a server showed it. The zero row is a
// server that shows no row for the probe id: no beat at all.
type row struct {
	seq int64
	// written is the primary's clock_timestamp() at the write, moved onto
	// the local clock.
	written time.Time
}

// behind bounds the lag of a target that had not shown a beat written
// before this run.
type behind struct {
	unshown row // the newest beat written before the run: lag >= its age
	shown   row // the beat the target shows: lag < its age
}

// behindOf returns the bounds for a target showing shown when the primary
// held last before this run wrote. ok is false when the target had shown
// every beat written before the run (its lag is then the age of this run's
// oldest unshown beat, which the probe times), or shows a seq the primary
// never held (another writer of this probe id, or a failover).
func behindOf(last, shown row) (b behind, ok bool) {
	if shown.seq >= last.seq {
		return behind{}, false
	}
	return behind{unshown: last, shown: shown}, true
}

// lower is the age at now of the newest beat the target is known not to
// show: the lag is at least this.
func (b behind) lower(now time.Time) time.Duration { return now.Sub(b.unshown.written) }

// upper is the age at now of the beat the target shows: the first beat
// after it was written later, so the lag is less than this. ok is false
// when it shows no beat.
func (b behind) upper(now time.Time) (d time.Duration, ok bool) {
	if b.shown.written.IsZero() {
		return 0, false
	}
	return now.Sub(b.shown.written), true
}

const rowSQL = `SELECT seq, written_at, clock_timestamp() FROM ` + heartbeat.QualTable + ` WHERE probe_id = $1`

// readRow reads probeID's row on one server: the seq, when it was written
// (the primary's clock: written_at is its clock_timestamp()), and skew, the
// server's clock minus ours at the midpoint of the round trip. Read on the
// primary, skew moves written_at onto the local clock. ok is false when
// there is no row.
func readRow(ctx context.Context, name string, cfg *pgx.ConnConfig, probeID string) (seq int64, written time.Time, skew time.Duration, ok bool, err error) {
	conn, err := pgconf.Connect(ctx, name, cfg)
	if err != nil {
		return 0, time.Time{}, 0, false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	var serverNow time.Time
	sent := time.Now()
	err = conn.QueryRow(ctx, rowSQL, probeID).Scan(&seq, &written, &serverNow)
	rtt := time.Since(sent)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, time.Time{}, 0, false, nil
	case err != nil:
		return 0, time.Time{}, 0, false, fmt.Errorf("read heartbeat row: %w", pgconf.Explain(name, cfg, err))
	}
	return seq, written, serverNow.Sub(sent.Add(rtt / 2)), true, nil
}
