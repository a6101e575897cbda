package e2e

import (
	"context"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
)

// TestWhyWalprobeExists runs each scenario of the core issue on one real
// cluster, asserting walprobe's number and the classic number side by side.
func TestWhyWalprobeExists(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 2, Subscriber: true, PgBouncer: true})
	primary := c.Primary.DSN("walprobe")
	const interval = 200 * time.Millisecond

	t.Run("idle_primary", func(t *testing.T) {
		r := startProbe(ctx, t, primary, "idle", time.Second, targetDSN{"standby1", probe.KindStandby, c.Standbys[0].DSN("walprobe")})
		waitFor(t, 15*time.Second, "beats timed on standby1", func() bool { return len(r.rec.visible("standby1")) >= 2 })
		r.w.SetPaused(true) // nothing writes on the primary from now on
		time.Sleep(30 * time.Second)
		s := r.target(t, "standby1")
		lag, bound, age := secs(s.Lag), secs(s.ErrorBound), secs(s.Classic.ReplayTimestampAge)
		t.Logf("after 30 s idle: walprobe lag %.3fs (bound %.4fs), classic replay timestamp age %.1fs", lag, bound, age)
		if lag < 0 || lag > time.Second.Seconds()+bound {
			t.Errorf("walprobe lag %.3fs on an idle primary, want <= interval + error bound", lag)
		}
		if age <= 25 {
			t.Errorf("classic now()-pg_last_xact_replay_timestamp() = %.1fs, want > 25s (the false alarm)", age)
		}
	})

	t.Run("receiver_cut_off", func(t *testing.T) {
		r := startProbe(ctx, t, primary, "cutoff", interval, targetDSN{"standby1", probe.KindStandby, c.Standbys[0].DSN("walprobe")})
		waitFor(t, 15*time.Second, "beats timed on standby1", func() bool { return len(r.rec.visible("standby1")) >= 3 })
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
		waitFor(t, 20*time.Second, "standby1 to catch up", func() bool {
			s := r.target(t, "standby1")
			return s.Lag != nil && *s.Lag < 1 && s.State == probe.StateHealthy
		})
	})

	t.Run("apply_delay_1s", func(t *testing.T) {
		sb := c.Standbys[1]
		if err := c.SetApplyDelay(ctx, sb, time.Second); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.SetApplyDelay(ctx, sb, 0) }()
		r := startProbe(ctx, t, primary, "delay", interval, targetDSN{"delayed", probe.KindStandby, sb.DSN("walprobe")})
		// Let the schedule learn the delay, then judge the next beats.
		waitFor(t, 30*time.Second, "25 beats timed on the delayed standby", func() bool { return len(r.rec.visible("delayed")) >= 25 })
		vis := r.rec.visible("delayed")[5:]
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
		r := startProbe(ctx, t, primary, "sub", interval, targetDSN{"subscriber", probe.KindSubscriber, c.Subscriber.DSN("walprobe")})
		waitFor(t, 15*time.Second, "beats timed on the subscriber", func() bool { return len(r.rec.visible("subscriber")) >= 3 })
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
		waitFor(t, 20*time.Second, "subscriber to catch up", func() bool {
			s := r.target(t, "subscriber")
			return s.Lag != nil && *s.Lag < 1
		})
	})

	t.Run("through_pgbouncer", func(t *testing.T) {
		r := startProbe(ctx, t, primary, "bouncer", interval,
			targetDSN{"direct", probe.KindStandby, c.Standbys[0].DSN("walprobe")},
			targetDSN{"bouncer", probe.KindEndpoint, c.PgBouncer.DSN("walprobe")})
		waitFor(t, 30*time.Second, "30 beats timed through pgbouncer", func() bool { return len(r.rec.visible("bouncer")) >= 30 })
		direct := map[int64]probe.Visibility{}
		for _, v := range r.rec.visible("direct") {
			direct[v.Beat.Seq] = v
		}
		var diffs []float64
		for _, v := range r.rec.visible("bouncer") {
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
