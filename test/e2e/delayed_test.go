package e2e

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/inproc"
	"github.com/walprobe/walprobe/walstream"
)

// Delayed standbys, with real servers (issue 15.2 and 15.4d):
//
//   - standby1 replays each commit 1 s after its commit timestamp
//     (recovery_min_apply_delay, same host, same clock), so the true
//     instant a beat became visible is known: its commit timestamp (read
//     off the logical stream) + 1 s. It must lie inside estimate ± bound
//     (plus 1 ms for the replay itself) for ≥ 99 % of ≥ 100 beats, and no
//     estimate may end before it (early).
//   - standby2 replays 30 s late, a disaster-recovery setup: once the
//     delay is learned the reader costs a few statements per beat (the
//     old schedule polled back to back), counted by the reader and checked
//     against the standby's own pg_stat_database.xact_commit.
func TestDelayedStandbys(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 2})
	s1, s2 := c.Standbys[0], c.Standbys[1]
	if err := c.SetApplyDelay(ctx, s1, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.SetApplyDelay(ctx, s2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	const interval = 200 * time.Millisecond
	r := startProbe(ctx, t, c.Primary.SuperDSN(), "delayed", interval,
		inproc.Target{Name: "standby1", Kind: probe.KindStandby, DSN: s1.SuperDSN()},
		inproc.Target{Name: "standby2", Kind: probe.KindStandby, DSN: s2.SuperDSN()})
	// The logical stream reads every beat's commit timestamp off the
	// commit record (pgoutput Begin): the very timestamp the standby's
	// apply delay counts from.
	commits := &commitLog{at: map[int64]time.Time{}}
	r.p.Observe(commits)
	runStream(ctx, t, r, c.Primary.SuperDSN(), "delayed")

	// Learning the 30 s delay takes 30 s; then count standby2's cost over
	// a steady window of 15 s while standby1 collects its beats.
	fakes.WaitFor(t.Context(), t, 60*time.Second, "standby2 to show its first beats", func() bool { return len(r.rec.VisibleOn("standby2")) >= 10 })
	xacts := func() int64 {
		// Stats are flushed at most once a second when idle: ask for a
		// fresh snapshot of this server's counters.
		v, err := s2.Scalar(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	rd2 := r.readers["standby2"]
	time.Sleep(1500 * time.Millisecond)
	polls0, xact0, timed0 := rd2.Polls(), xacts(), len(r.rec.VisibleOn("standby2"))
	time.Sleep(15 * time.Second)
	time.Sleep(1500 * time.Millisecond) // let the stats flush
	polls1, xact1, timed1 := rd2.Polls(), xacts(), len(r.rec.VisibleOn("standby2"))
	polls, beats := polls1-polls0, int64(timed1-timed0)
	// xact_commit also counts this test's own reads, and a backend
	// flushes its counters to the shared statistics at most once a second
	// (PostgreSQL 15), so a window's edges can fall either side of a
	// flush: allow a few, and 10 %, either way.
	if d := (xact1 - xact0) - polls; d < -(5+polls/10) || d > 5+polls/10 {
		t.Errorf("the standby counted %d transactions while the reader counted %d polls", xact1-xact0, polls)
	}
	perBeat := float64(polls) / float64(max(beats, 1))
	t.Logf("standby2 (30 s apply delay): %d polls for %d beats in 15 s = %.2f polls/beat (standby counted %d transactions)", polls, beats, perBeat, xact1-xact0)
	if beats < 50 {
		t.Errorf("standby2 timed only %d beats in 15 s at %v", beats, interval)
	}
	if perBeat > 4 {
		t.Errorf("standby2: %.2f polls per beat, want ≤ 4", perBeat)
	}

	// standby1: truth inside every estimate.
	vis := r.rec.VisibleOn("standby1")
	if len(vis) < 100 {
		fakes.WaitFor(t.Context(), t, 30*time.Second, "100 beats on standby1", func() bool { return len(r.rec.VisibleOn("standby1")) >= 100 })
		vis = r.rec.VisibleOn("standby1")
	}
	var inside, early, checked int
	var bounds []time.Duration
	for _, v := range vis {
		commit, ok := commits.get(v.Beat.Seq)
		if !ok {
			continue // before the stream's slot existed
		}
		checked++
		// Wall clocks: the primary's commit timestamp and the probe's
		// estimate come from one host.
		truth := commit.Add(time.Second)
		// PostgreSQL's apply-delay wait sleeps whole milliseconds,
		// rounded up, then the startup process replays: the commit
		// becomes visible at commit + 1 s and some milliseconds later,
		// more on a loaded 2-core machine (the replay waits for a CPU).
		// An estimate is early if it ends before commit + 1 s − 1 ms (the
		// hard guarantee), late if it starts after commit + 1 s + 5 ms.
		est := v.VisibleAt.Round(0)
		lo, hi := est.Add(-v.ErrorBound-5*time.Millisecond), est.Add(v.ErrorBound+time.Millisecond)
		switch {
		case hi.Before(truth):
			early++
		case !truth.Before(lo):
			inside++
		default:
			if testing.Verbose() {
				t.Logf("beat %d: truth %v before estimate−bound (delay %v ± %v, rtt %v, primary→ack %v)", v.Beat.Seq, lo.Sub(truth), v.Delay, v.ErrorBound, v.Beat.RTT(), v.Beat.Acked.Round(0).Sub(v.Beat.PrimaryTime))
			}
		}
		bounds = append(bounds, v.ErrorBound)
	}
	slices.Sort(bounds)
	if checked < 100 {
		t.Fatalf("only %d beats on standby1 have a commit timestamp from the stream, want ≥ 100", checked)
	}
	share := float64(inside) / float64(checked)
	t.Logf("standby1 (1 s apply delay): %d beats, %.1f %% with the truth inside estimate ± bound, %d early; bound p50 %v p99 %v",
		checked, 100*share, early, bounds[len(bounds)/2], bounds[len(bounds)*99/100])
	if early > 0 {
		t.Errorf("%d estimates end before the beat was really visible", early)
	}
	if share < 0.99 {
		t.Errorf("truth inside estimate ± bound for %.1f %% of beats, want ≥ 99 %%", 100*share)
	}
}

// commitLog keeps each beat's commit timestamp as the stream saw it.
type commitLog struct {
	probe.NopObserver
	mu sync.Mutex
	at map[int64]time.Time
}

func (l *commitLog) Stages(s probe.StreamStages) {
	l.mu.Lock()
	l.at[s.Beat.Seq] = s.Commit
	l.mu.Unlock()
}

func (l *commitLog) get(seq int64) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.at[seq]
	return t, ok
}

// runStream adds the logical stream to a running probe until the test ends.
func runStream(ctx context.Context, t *testing.T, r *running, primaryDSN, probeID string) {
	t.Helper()
	tg, err := r.p.Register("stream", probe.KindStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgconf.Parse("stream", primaryDSN)
	if err != nil {
		t.Fatal(err)
	}
	st, err := walstream.New(walstream.Config{Conn: cfg, ProbeID: probeID}, tg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = st.Run(sctx) }()
	t.Cleanup(func() { cancel(); <-done })
}
