package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/inproc"
)

// TestWhyWalprobeExists runs each scenario of the core issue on one real
// cluster, asserting walprobe's number and the classic number side by side.
func TestWhyWalprobeExists(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 2, Subscriber: true, PgBouncer: true})
	primary := c.Primary.DSN("walprobe")
	const interval = 200 * time.Millisecond

	// An idle application: walprobe's writer keeps beating and nothing
	// else writes. A caught-up standby's lag stays within one interval
	// plus the error bound, and the reader keeps timing beats; checkIdle
	// fails on a dead reader or a cut-off standby (idle_control proves it
	// on a real cut). 30 s: longer than checkpoint_timeout's minimum and
	// many wal_receiver_status_interval replies, as an operator's idle
	// stretch would be.
	const idleInterval = time.Second
	t.Run("idle_application", func(t *testing.T) {
		r := startProbe(ctx, t, primary, "idle", idleInterval, inproc.Target{Name: "standby1", Kind: probe.KindStandby, DSN: c.Standbys[0].DSN("walprobe")})
		fakes.WaitFor(t.Context(), t, 15*time.Second, "beats timed on standby1", func() bool { return len(r.rec.VisibleOn("standby1")) >= 2 })
		samples := sampleIdle(t, r, "standby1", 30*time.Second)
		first, last := samples[0], samples[len(samples)-1]
		t.Logf("%d samples over 30 s idle: worst lag %.3fs, beats timed %d -> %d, last seen seq %d -> %d",
			len(samples), worstLag(samples), first.beatsTimed, last.beatsTimed, seqOf(first), seqOf(last))
		if err := checkIdle(samples, idleInterval); err != nil {
			t.Error(err)
		}
	})

	// The negative control: the same samples and checkIdle with the
	// standby's WAL receiver cut must report a failure.
	t.Run("idle_control_cut_off", func(t *testing.T) {
		r := startProbe(ctx, t, primary, "idlecut", idleInterval, inproc.Target{Name: "standby1", Kind: probe.KindStandby, DSN: c.Standbys[0].DSN("walprobe")})
		fakes.WaitFor(t.Context(), t, 15*time.Second, "beats timed on standby1", func() bool { return len(r.rec.VisibleOn("standby1")) >= 2 })
		if err := c.CutReceiver(ctx, c.Standbys[0]); err != nil {
			t.Fatal(err)
		}
		samples := sampleIdle(t, r, "standby1", 6*time.Second)
		if err := c.RestoreReceiver(ctx, c.Standbys[0]); err != nil {
			t.Fatal(err)
		}
		err := checkIdle(samples, idleInterval)
		if err == nil {
			t.Fatalf("checkIdle passed %d samples of a cut-off standby (worst lag %.3fs): it proves nothing", len(samples), worstLag(samples))
		}
		t.Logf("cut off, checkIdle reports (as it must): %v", err)
		fakes.WaitFor(t.Context(), t, 20*time.Second, "standby1 to catch up", func() bool {
			s := r.target(t, "standby1")
			return s.Lag != nil && *s.Lag < time.Second && s.State == probe.StateHealthy
		})
	})

	// The classic number's false alarm: with no writer at all, a
	// caught-up standby's now() - pg_last_xact_replay_timestamp() grows
	// with the wall clock. Read directly, as a dashboard would.
	t.Run("idle_primary_classic_false_alarm", func(t *testing.T) {
		const sql = "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8::text"
		age := func() float64 {
			v, err := c.Standbys[0].Scalar(ctx, sql)
			if err != nil {
				t.Fatal(err)
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		before := age()
		time.Sleep(10 * time.Second)
		after := age()
		t.Logf("no writer: classic replay timestamp age %.1fs, 10 s later %.1fs", before, after)
		if after-before < 9 || after < 10 {
			t.Errorf("classic now()-pg_last_xact_replay_timestamp() went %.1fs -> %.1fs over 10 s with no writes, want it to grow with the clock (the false alarm)", before, after)
		}
	})

	t.Run("receiver_cut_off", func(t *testing.T) {
		r := startProbe(ctx, t, primary, "cutoff", interval, inproc.Target{Name: "standby1", Kind: probe.KindStandby, DSN: c.Standbys[0].DSN("walprobe")})
		fakes.WaitFor(t.Context(), t, 15*time.Second, "beats timed on standby1", func() bool { return len(r.rec.VisibleOn("standby1")) >= 3 })
		if err := c.CutReceiver(ctx, c.Standbys[0]); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		defer func() {
			if err := c.RestoreReceiver(ctx, c.Standbys[0]); err != nil {
				t.Fatal(err)
			}
		}()
		time.Sleep(10*time.Second - time.Since(cut))
		s := r.target(t, "standby1")
		lag, exp := secs(s.Lag), secs(s.Classic.ExporterLag)
		t.Logf("after 10 s cut off: walprobe lag %.2fs state %s, classic exporter-style lag %.2fs (at %s)", lag, s.State, exp, s.Classic.At.Format(time.RFC3339Nano))
		if lag < 9 {
			t.Errorf("walprobe lag %.2fs after 10 s cut off, want >= 9s", lag)
		}
		if exp != 0 {
			t.Errorf("classic exporter-style lag = %.2fs while cut off, want exactly 0 (the silent lie)", exp)
		}
		if s.State != probe.StateStalled && s.State != probe.StateLagging {
			t.Errorf("state %s while cut off, want lagging or stalled", s.State)
		}
		if err := c.RestoreReceiver(ctx, c.Standbys[0]); err != nil {
			t.Fatal(err)
		}
		fakes.WaitFor(t.Context(), t, 20*time.Second, "standby1 to catch up", func() bool {
			s := r.target(t, "standby1")
			return s.Lag != nil && *s.Lag < time.Second && s.State == probe.StateHealthy
		})
	})

	t.Run("apply_delay_1s", func(t *testing.T) {
		sb := c.Standbys[1]
		if err := c.SetApplyDelay(ctx, sb, time.Second); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.SetApplyDelay(ctx, sb, 0) }()
		r := startProbe(ctx, t, primary, "delay", interval, inproc.Target{Name: "delayed", Kind: probe.KindStandby, DSN: sb.DSN("walprobe")})
		// Let the schedule learn the delay, then judge the next beats.
		fakes.WaitFor(t.Context(), t, 30*time.Second, "25 beats timed on the delayed standby", func() bool { return len(r.rec.VisibleOn("delayed")) >= 25 })
		vis := r.rec.VisibleOn("delayed")[5:]
		var worstBound time.Duration
		for _, v := range vis {
			worstBound = max(worstBound, v.ErrorBound)
			if v.Delay < 990*time.Millisecond || v.Delay > 1050*time.Millisecond {
				t.Errorf("beat %d delay %v, want within [0.99s, 1.05s]", v.Beat.Seq, v.Delay)
			}
			if v.ErrorBound > 10*time.Millisecond {
				t.Errorf("beat %d error bound %v, want <= 10ms", v.Beat.Seq, v.ErrorBound)
			}
		}
		t.Logf("%d beats on a 1 s apply delay: delays %v … %v, worst error bound %v", len(vis), minDelay(vis), maxDelay(vis), worstBound)
	})

	t.Run("subscription_disabled", func(t *testing.T) {
		r := startProbe(ctx, t, primary, "sub", interval, inproc.Target{Name: "subscriber", Kind: probe.KindSubscriber, DSN: c.Subscriber.DSN("walprobe")})
		fakes.WaitFor(t.Context(), t, 15*time.Second, "beats timed on the subscriber", func() bool { return len(r.rec.VisibleOn("subscriber")) >= 3 })
		if err := c.DisableSubscription(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		s := r.target(t, "subscriber")
		t.Logf("after 5 s disabled: walprobe lag %.2fs state %s, classic subscription receipt age %.2fs", secs(s.Lag), s.State, secs(s.Classic.SubscriptionReceiptAge))
		if err := c.EnableSubscription(ctx); err != nil {
			t.Fatal(err)
		}
		if secs(s.Lag) < 4 {
			t.Errorf("subscriber lag %.2fs after 5 s disabled, want >= 4s", secs(s.Lag))
		}
		fakes.WaitFor(t.Context(), t, 20*time.Second, "subscriber to catch up", func() bool {
			s := r.target(t, "subscriber")
			return s.Lag != nil && *s.Lag < time.Second
		})
	})

	t.Run("through_pgbouncer", func(t *testing.T) {
		r := startProbe(ctx, t, primary, "bouncer", interval,
			inproc.Target{Name: "direct", Kind: probe.KindStandby, DSN: c.Standbys[0].DSN("walprobe")},
			inproc.Target{Name: "bouncer", Kind: probe.KindEndpoint, DSN: c.PgBouncer.DSN("walprobe")})
		fakes.WaitFor(t.Context(), t, 30*time.Second, "30 beats timed through pgbouncer", func() bool { return len(r.rec.VisibleOn("bouncer")) >= 30 })
		direct := map[int64]probe.Visibility{}
		for _, v := range r.rec.VisibleOn("direct") {
			direct[v.Beat.Seq] = v
		}
		var diffs []float64
		for _, v := range r.rec.VisibleOn("bouncer") {
			d, ok := direct[v.Beat.Seq]
			if !ok {
				continue
			}
			diff := math.Abs(v.VisibleAt.Sub(d.VisibleAt).Seconds())
			diffs = append(diffs, diff)
			// Both estimates bracket the same replay moment; allow the two
			// error bounds plus the pooler's extra hop.
			if limit := (v.ErrorBound + d.ErrorBound + 2*time.Millisecond).Seconds(); diff > limit {
				t.Errorf("beat %d: through pgbouncer %v, direct %v: differ by %.4fs > %.4fs", v.Beat.Seq, v.Delay, d.Delay, diff, limit)
			}
		}
		if len(diffs) < 20 {
			t.Fatalf("only %d beats timed on both", len(diffs))
		}
		sort.Float64s(diffs)
		t.Logf("%d beats: |pgbouncer − direct| median %.3fms max %.3fms", len(diffs), diffs[len(diffs)/2]*1e3, diffs[len(diffs)-1]*1e3)
	})
}

func minDelay(vs []probe.Visibility) time.Duration {
	m := time.Duration(math.MaxInt64)
	for _, v := range vs {
		m = min(m, v.Delay)
	}
	return m
}

func maxDelay(vs []probe.Visibility) time.Duration {
	var m time.Duration
	for _, v := range vs {
		m = max(m, v.Delay)
	}
	return m
}

// idleSample is one look at a target.
type idleSample struct {
	at         time.Time
	lag, bound *time.Duration
	beatsTimed int64
	lastSeq    *int64
}

// sampleIdle looks at target every 100 ms for d.
func sampleIdle(t *testing.T, r *running, target string, d time.Duration) []idleSample {
	t.Helper()
	var out []idleSample
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		s := r.target(t, target)
		out = append(out, idleSample{at: time.Now(), lag: s.Lag, bound: s.ErrorBound, beatsTimed: s.BeatsTimed, lastSeq: s.LastSeq})
	}
	return out
}

// checkIdle reports what in samples is not a live, caught-up target on a
// primary where the writer beats every interval: a lag unknown or above
// interval + error bound (a cut-off standby, or a dead reader: the lag of
// unshown beats grows), or a stretch of 3 intervals in which no beat was
// timed or the target showed no newer seq (a dead or stuck reader).
func checkIdle(samples []idleSample, interval time.Duration) error {
	if len(samples) < 2 {
		return fmt.Errorf("%d samples: too few to judge", len(samples))
	}
	var errs []error
	for i, s := range samples {
		switch {
		case s.lag == nil:
			errs = append(errs, fmt.Errorf("sample %d: lag unknown", i))
		case s.lag.Seconds() < 0 || s.lag.Seconds() > interval.Seconds()+secs(s.bound):
			errs = append(errs, fmt.Errorf("sample %d: lag %.3fs, want <= interval %v + error bound %.4fs", i, s.lag.Seconds(), interval, secs(s.bound)))
		}
	}
	window := 3 * interval
	if samples[len(samples)-1].at.Sub(samples[0].at) < window {
		errs = append(errs, fmt.Errorf("samples span %v: shorter than %v, cannot tell a live reader", samples[len(samples)-1].at.Sub(samples[0].at), window))
	}
	for i, j := 0, 0; i < len(samples); i++ {
		for j < len(samples) && samples[j].at.Sub(samples[i].at) < window {
			j++
		}
		if j == len(samples) {
			break
		}
		a, b := samples[i], samples[j]
		if b.beatsTimed <= a.beatsTimed {
			errs = append(errs, fmt.Errorf("samples %d..%d: no beat timed in %v (beats_timed stays %d)", i, j, b.at.Sub(a.at).Round(time.Millisecond), a.beatsTimed))
		}
		if a.lastSeq == nil || b.lastSeq == nil || *b.lastSeq <= *a.lastSeq {
			errs = append(errs, fmt.Errorf("samples %d..%d: last seen seq did not advance in %v (%d -> %d)", i, j, b.at.Sub(a.at).Round(time.Millisecond), seqOf(a), seqOf(b)))
		}
	}
	if len(errs) > 5 { // the first few say what went wrong
		errs = append(errs[:5], fmt.Errorf("and %d more", len(errs)-5))
	}
	return errors.Join(errs...)
}

func worstLag(samples []idleSample) float64 {
	w := -1.0
	for _, s := range samples {
		w = max(w, secs(s.lag))
	}
	return w
}

func seqOf(s idleSample) int64 {
	if s.lastSeq == nil {
		return -1
	}
	return *s.lastSeq
}

// TestCheckIdleDeadReader: a reader that died leaves beats_timed and the
// last seen seq flat while the lag of unshown beats grows; checkIdle must
// say so without a server.
func TestCheckIdleDeadReader(t *testing.T) {
	t0 := time.Now()
	var samples []idleSample
	for i := range 60 {
		lag, seq := time.Duration(i)*100*time.Millisecond, int64(7)
		samples = append(samples, idleSample{at: t0.Add(time.Duration(i) * 100 * time.Millisecond), lag: &lag, beatsTimed: 7, lastSeq: &seq})
	}
	if err := checkIdle(samples, time.Second); err == nil {
		t.Error("checkIdle passed a dead reader's samples")
	}
}
