package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
)

// accInterval is the beat interval of every accuracy scenario: short, so a
// scenario of a few seconds times enough beats for a p99.
const accInterval = 250 * time.Millisecond

// standbyClassicSQL is what a classic exporter and a dashboard would read
// on the standby at the same moment: the exporter-style CASE column (the
// same expression the reader collects) and now() - last replayed commit.
const standbyClassicSQL = `SELECT format('%s|%s',
  (CASE WHEN NOT pg_is_in_recovery() THEN 0
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
        ELSE GREATEST(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())) END),
  extract(epoch FROM now() - pg_last_xact_replay_timestamp()))`

// subscriberClassicSQL: the ages pg_stat_subscription offers.
const subscriberClassicSQL = `SELECT format('%s|%s',
  extract(epoch FROM now() - max(last_msg_receipt_time)),
  extract(epoch FROM now() - max(latest_end_time)))
FROM pg_stat_subscription`

type faultResult struct {
	lagging, stalled, exp, age         time.Duration
	laggingOK, stalledOK, expOK, ageOK bool
	lag                                time.Duration
	lagOK                              bool
	truth                              time.Duration
	expNow, ageNow                     *float64
	snap                               *probe.Classic
}

// runFault injects a fault, watches the target's state and the classic
// numbers every 100 ms for hold, and takes walprobe's lag, the truth (time
// since inject returned) and the classic numbers at one final moment.
func runFault(b *testing.B, r *rig, name string, srv *cluster.Server, classicSQL string, inject func() error, hold time.Duration) faultResult {
	b.Helper()
	ctx := context.Background()
	thr := r.p.Config().LagThreshold.Seconds()
	if _, ok := r.waitState(name, probe.StateHealthy, 30*time.Second); !ok {
		b.Fatalf("%s not healthy before the fault: %+v", name, r.p.Snapshot().Targets)
	}
	if err := inject(); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	t := r.target(name)
	var res faultResult
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < hold {
		<-tick.C
		el := time.Since(start)
		switch t.State() {
		case probe.StateLagging:
			if !res.laggingOK {
				res.lagging, res.laggingOK = el, true
			}
		case probe.StateStalled:
			if !res.stalledOK {
				res.stalled, res.stalledOK = el, true
			}
		}
		e, a := classicPair(ctx, srv, classicSQL)
		if e != nil && *e >= thr && !res.expOK {
			res.exp, res.expOK = time.Since(start), true
		}
		if a != nil && *a >= thr && !res.ageOK {
			res.age, res.ageOK = time.Since(start), true
		}
	}
	res.lag, res.lagOK = t.Lag()
	res.truth = time.Since(start)
	res.expNow, res.ageNow = classicPair(ctx, srv, classicSQL)
	for _, ts := range r.p.Snapshot().Targets {
		if ts.Name == name {
			res.snap = ts.Classic
		}
	}
	return res
}

func snapF(s *probe.Seconds) *float64 {
	if s == nil {
		return nil
	}
	f := float64(*s)
	return &f
}

func BenchmarkAccuracy(b *testing.B) {
	c := startCluster(b, cluster.Options{Standbys: 1, Subscriber: true, PgBouncer: true})
	ctx := context.Background()
	sb := c.Standbys[0]
	standby := spec{"standby1", probe.KindStandby, sb.DSN("walprobe")}
	acc := &table{title: fmt.Sprintf("Accuracy (beat interval %v, lag threshold 1s; classic numbers read directly at the same moment)", accInterval)}
	acc.add("scenario", "walprobe", "truth", "classic (same moment)", "notes")
	det := &table{title: "Detection (seconds after the fault helper returned; threshold 1s; state and classic sampled every 100ms)"}
	det.add("scenario", "walprobe lagging", "walprobe stalled", "classic exporter-style >=1s", "replay-ts / end age >=1s")
	defer func() { fmt.Print(acc.String(), det.String(), "\n") }()

	b.Run("apply_delay_1s", func(b *testing.B) {
		for b.Loop() {
			if err := c.SetApplyDelay(ctx, sb, time.Second); err != nil {
				b.Fatal(err)
			}
			r := newRig(b, c, accInterval, standby)
			r.waitTimed(4, 30*time.Second)
			time.Sleep(20 * time.Second)
			vs := r.obs.take("standby1")
			lag, _ := r.target("standby1").Lag()
			e, a := classicPair(ctx, sb, standbyClassicSQL)
			r.stop()
			if err := c.SetApplyDelay(ctx, sb, 0); err != nil {
				b.Fatal(err)
			}
			if len(vs) == 0 {
				b.Fatal("no beats timed")
			}
			var errs, signed []time.Duration
			outside, early := 0, 0
			for _, v := range vs {
				d := v.Delay - time.Second
				signed = append(signed, d)
				errs = append(errs, max(d, -d))
				// True visibility: the standby replays the commit at its
				// commit timestamp (≈ PrimaryTime) + 1 s.
				tv := v.Beat.PrimaryTime.Add(time.Second)
				off := v.VisibleAt.Sub(tv)
				if max(off, -off) > v.ErrorBound+time.Millisecond {
					outside++
				}
				// Early: walprobe's whole interval ends before the
				// earliest moment the row could be visible. Late misses
				// can be the standby replaying late (CPU), early ones
				// cannot.
				if v.VisibleAt.Add(v.ErrorBound + time.Millisecond).Before(tv) {
					early++
				}
			}
			b.ReportMetric(ms(pct(errs, .99)), "p99-err-ms")
			b.ReportMetric(ms(pct(errs, 1)), "max-err-ms")
			b.ReportMetric(ms(pct(bounds(vs), .99)), "p99-bound-ms")
			b.ReportMetric(float64(outside)/float64(len(vs))*100, "%outside-bound")
			b.ReportMetric(float64(early), "early-beats")
			b.ReportMetric(float64(len(vs)), "beats")
			acc.add("apply_delay_1s",
				fmt.Sprintf("delay p50 %.1fms, |err| p99 %.1fms max %.1fms, bound p99 %.1fms, bias p50 %+.1fms",
					ms(pct(delays(vs), .5)), ms(pct(errs, .99)), ms(pct(errs, 1)), ms(pct(bounds(vs), .99)), ms(pct(signed, .5))),
				"1000ms per beat",
				fmt.Sprintf("exporter %s, replay-ts age %s (at end)", fmtF(e, "s"), fmtF(a, "s")),
				fmt.Sprintf("%d beats, %d (%.0f%%) with |VisibleAt-(commit+1s)| > bound (%d early = impossible); lag at end %.0fms", len(vs), outside, float64(outside)/float64(len(vs))*100, early, ms(lag)))
		}
	})

	b.Run("fast_standby", func(b *testing.B) {
		for b.Loop() {
			r := newRig(b, c, accInterval, standby)
			r.waitTimed(4, 30*time.Second)
			time.Sleep(15 * time.Second)
			vs := r.obs.take("standby1")
			lag, _ := r.target("standby1").Lag()
			e, a := classicPair(ctx, sb, standbyClassicSQL)
			r.stop()
			b.ReportMetric(ms(pct(bounds(vs), .99)), "p99-bound-ms")
			b.ReportMetric(ms(pct(delays(vs), .99)), "p99-delay-ms")
			b.ReportMetric(ms(pct(delays(vs), .5)), "p50-delay-ms")
			b.ReportMetric(float64(len(vs)), "beats")
			acc.add("fast_standby",
				fmt.Sprintf("delay p50 %.2fms p99 %.2fms, bound p99 %.2fms; lag at end %.0fms",
					ms(pct(delays(vs), .5)), ms(pct(delays(vs), .99)), ms(pct(bounds(vs), .99)), ms(lag)),
				"~0 (same host)",
				fmt.Sprintf("exporter %s, replay-ts age %s", fmtF(e, "s"), fmtF(a, "s")),
				fmt.Sprintf("%d beats", len(vs)))
		}
	})

	faultRow := func(b *testing.B, scen string, res faultResult, extra string) {
		b.ReportMetric(res.lag.Seconds(), "walprobe-lag-s")
		b.ReportMetric(res.truth.Seconds(), "truth-s")
		b.ReportMetric(ms(res.lag-res.truth), "lag-minus-truth-ms")
		if res.expNow != nil {
			b.ReportMetric(*res.expNow, "classic-exporter-s")
		}
		if res.ageNow != nil {
			b.ReportMetric(*res.ageNow, "classic-age-s")
		}
		if res.laggingOK {
			b.ReportMetric(res.lagging.Seconds(), "detect-s")
		}
		if res.expOK {
			b.ReportMetric(res.exp.Seconds(), "classic-detect-s")
		}
		var sE, sA *float64
		if res.snap != nil {
			sE, sA = snapF(res.snap.ExporterLag), snapF(res.snap.ReplayTimestampAge)
			if res.snap.SubscriptionReceiptAge != nil || res.snap.SubscriptionWorkers != nil {
				sE, sA = snapF(res.snap.SubscriptionReceiptAge), snapF(res.snap.SubscriptionEndAge)
			}
		}
		acc.add(scen,
			fmt.Sprintf("lag %.3fs (%+.0fms vs truth)", res.lag.Seconds(), ms(res.lag-res.truth)),
			fmt.Sprintf("%.3fs", res.truth.Seconds()),
			fmt.Sprintf("%s; walprobe's own classic snapshot: %s / %s", extra, fmtF(sE, "s"), fmtF(sA, "s")),
			fmt.Sprintf("lag known %v", res.lagOK))
		det.add(scen, fmtSec(res.lagging, res.laggingOK), fmtSec(res.stalled, res.stalledOK), fmtSec(res.exp, res.expOK), fmtSec(res.age, res.ageOK))
	}

	subscriber := spec{"subscriber", probe.KindSubscriber, c.Subscriber.DSN("walprobe")}
	standbyExtra := func(res faultResult) string {
		return fmt.Sprintf("exporter %s, replay-ts age %s", fmtF(res.expNow, "s"), fmtF(res.ageNow, "s"))
	}
	for _, f := range []struct {
		name        string
		target      spec
		server      *cluster.Server
		classicSQL  string
		inject      func() error
		restore     func() error
		restoreName string
		dur         time.Duration
		extra       func(faultResult) string
	}{
		{"receiver_cut_20s", standby, sb, standbyClassicSQL, func() error { return c.CutReceiver(ctx, sb) },
			func() error { return c.RestoreReceiver(ctx, sb) }, "RestoreReceiver", 20 * time.Second, standbyExtra},
		{"replay_paused_15s", standby, sb, standbyClassicSQL, func() error { return c.PauseReplay(ctx, sb) },
			func() error { return c.ResumeReplay(ctx, sb) }, "ResumeReplay", 15 * time.Second, standbyExtra},
		{"subscription_disabled_15s", subscriber, c.Subscriber, subscriberClassicSQL, func() error { return c.DisableSubscription(ctx) },
			func() error { return c.EnableSubscription(ctx) }, "EnableSubscription", 15 * time.Second,
			func(res faultResult) string {
				return fmt.Sprintf("last_msg_receipt age %s, latest_end age %s", fmtF(res.expNow, "s"), fmtF(res.ageNow, "s"))
			}},
	} {
		b.Run(f.name, func(b *testing.B) {
			for b.Loop() {
				r := newRig(b, c, accInterval, f.target)
				r.waitTimed(4, 30*time.Second)
				res := runFault(b, r, f.target.name, f.server, f.classicSQL, f.inject, f.dur)
				if err := f.restore(); err != nil {
					b.Fatal(err)
				}
				rec, ok := r.waitState(f.target.name, probe.StateHealthy, 30*time.Second)
				r.stop()
				faultRow(b, f.name, res, f.extra(res))
				acc.rows[len(acc.rows)-1][4] += fmt.Sprintf("; healthy %s after %s", fmtSec(rec, ok), f.restoreName)
			}
		})
	}

	b.Run("idle_primary_30s", func(b *testing.B) {
		for b.Loop() {
			r := newRig(b, c, accInterval, standby)
			r.waitTimed(4, 30*time.Second)
			if _, ok := r.waitState("standby1", probe.StateHealthy, 30*time.Second); !ok {
				b.Fatal("standby1 not healthy")
			}
			t := r.target("standby1")
			const avSQL = `SELECT format('%s|%s', autoanalyze_count, autovacuum_count) FROM pg_stat_user_tables WHERE relid = 'walprobe.heartbeat'::regclass`
			an0, vac0 := classicPair(ctx, c.Primary, avSQL)
			r.stopWriter()
			start := time.Now()
			var maxLag, ageCross time.Duration
			var maxAge float64
			ageOK := false
			bad := map[probe.State]bool{}
			for time.Since(start) < 30*time.Second {
				time.Sleep(100 * time.Millisecond)
				lag, _ := t.Lag()
				maxLag = max(maxLag, lag)
				if st := t.State(); st != probe.StateHealthy {
					bad[st] = true
				}
				if _, a := classicPair(ctx, sb, standbyClassicSQL); a != nil {
					maxAge = max(maxAge, *a)
					if !ageOK && *a >= 1 {
						ageCross, ageOK = time.Since(start), true
					}
				}
			}
			lag, _ := t.Lag()
			e, a := classicPair(ctx, sb, standbyClassicSQL)
			an1, vac1 := classicPair(ctx, c.Primary, avSQL)
			r.stop()
			b.ReportMetric(maxAge, "classic-max-age-s")
			b.ReportMetric(lag.Seconds(), "walprobe-lag-s")
			b.ReportMetric(maxLag.Seconds(), "walprobe-max-lag-s")
			b.ReportMetric(0, "truth-s")
			if a != nil {
				b.ReportMetric(*a, "classic-age-s")
			}
			if e != nil {
				b.ReportMetric(*e, "classic-exporter-s")
			}
			acc.add("idle_primary_30s",
				fmt.Sprintf("lag %.3fs (max %.3fs over the idle period)", lag.Seconds(), maxLag.Seconds()),
				"0s",
				fmt.Sprintf("exporter %s, replay-ts age %s (max %.3fs during the period)", fmtF(e, "s"), fmtF(a, "s"), maxAge),
				fmt.Sprintf("non-healthy states seen: %v; heartbeat autoanalyze count %s->%s, autovacuum %s->%s on the primary", keys(bad), fmtF(an0, ""), fmtF(an1, ""), fmtF(vac0, ""), fmtF(vac1, "")))
			det.add("idle_primary_30s (false alarm)", fmt.Sprintf("%v", keys(bad)), "-", "-", fmtSec(ageCross, ageOK))
		}
	})

	b.Run("via_pgbouncer", func(b *testing.B) {
		for b.Loop() {
			r := newRig(b, c, accInterval, standby, spec{"pgbouncer", probe.KindEndpoint, c.PgBouncer.DSN("walprobe")})
			r.waitTimed(4, 30*time.Second)
			time.Sleep(15 * time.Second)
			d, p := r.obs.take("standby1"), r.obs.take("pgbouncer")
			r.stop()
			b.ReportMetric(ms(pct(delays(d), .5)), "direct-p50-ms")
			b.ReportMetric(ms(pct(delays(d), .99)), "direct-p99-ms")
			b.ReportMetric(ms(pct(bounds(d), .99)), "direct-p99-bound-ms")
			b.ReportMetric(ms(pct(delays(p), .5)), "bouncer-p50-ms")
			b.ReportMetric(ms(pct(delays(p), .99)), "bouncer-p99-ms")
			b.ReportMetric(ms(pct(bounds(p), .99)), "bouncer-p99-bound-ms")
			acc.add("via_pgbouncer",
				fmt.Sprintf("pgbouncer delay p50 %.2fms p99 %.2fms bound p99 %.2fms (%d beats)",
					ms(pct(delays(p), .5)), ms(pct(delays(p), .99)), ms(pct(bounds(p), .99)), len(p)),
				fmt.Sprintf("direct standby p50 %.2fms p99 %.2fms bound p99 %.2fms (%d beats)",
					ms(pct(delays(d), .5)), ms(pct(delays(d), .99)), ms(pct(bounds(d), .99)), len(d)),
				"-", "same standby, endpoint kind through pool_mode=transaction")
		}
	})
}

func keys(m map[probe.State]bool) []probe.State {
	var out []probe.State
	for k := range m {
		out = append(out, k)
	}
	return out
}
