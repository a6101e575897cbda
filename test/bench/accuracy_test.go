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

type faultResult struct {
	lagging, stalled     time.Duration
	laggingOK, stalledOK bool
	cross                [numClassic]time.Duration // first moment each classic number read ≥ threshold
	crossOK              [numClassic]bool
	moments              []moment
	lag                  time.Duration // walprobe's lag at the last moment
	lagOK                bool
	truth                time.Duration
}

// runFault injects a fault and samples the target's state, walprobe's lag
// and every classic number every sampleEvery for hold; the truth of each
// moment is the time since inject returned.
func runFault(b *testing.B, r *rig, name string, smp *sampler, inject func() error, hold time.Duration) faultResult {
	b.Helper()
	ctx := context.Background()
	thr := r.p.Config().LagThreshold.Seconds()
	if _, ok := r.waitState(name, probe.StateHealthy, 30*time.Second); !ok {
		b.Fatalf("%s not healthy before the fault: %+v", name, r.p.Snapshot().Targets)
	}
	if err := inject(); err != nil {
		b.Fatal(err)
	}
	t := r.target(name)
	var res faultResult
	res.moments = smp.sampleFor(ctx, t, hold, func(el time.Duration) time.Duration { return el }, func(el time.Duration, m moment) {
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
		for i, v := range m.classic {
			if v != nil && *v >= thr && !res.crossOK[i] {
				res.cross[i], res.crossOK[i] = el, true
			}
		}
	})
	last := res.moments[len(res.moments)-1]
	res.truth = last.truth
	if last.walprobe != nil {
		res.lag, res.lagOK = *last.walprobe, true
	}
	return res
}

// delayErrs is walprobe's per-beat delay error against a known delay.
func delayErrs(vs []probe.Visibility, truth time.Duration) colErrs {
	var c colErrs
	for _, v := range vs {
		d := v.Delay
		c.add(&d, truth)
	}
	return c
}

func BenchmarkAccuracy(b *testing.B) {
	c := startCluster(b, cluster.Options{Standbys: 1, Subscriber: true, PgBouncer: true})
	ctx := context.Background()
	sb := c.Standbys[0]
	standby := spec{"standby1", probe.KindStandby, sb.DSN("walprobe")}
	acc := &table{title: fmt.Sprintf("Accuracy (beat interval %v, lag threshold 1s; walprobe and every classic number read at the same moments, every %v; |err| = absolute error against the truth, p99 and max over the moments (walprobe: over the beats where it times beats))", accInterval, sampleEvery)}
	acc.add(accuracyHeader()...)
	det := &table{title: fmt.Sprintf("Detection (seconds after the fault helper returned until the number first reads >= 1s; state and classic sampled every %v)", sampleEvery)}
	det.add(append([]string{"scenario", "walprobe lagging", "walprobe stalled"}, classicNames[:]...)...)
	defer func() { fmt.Print(acc.String(), det.String(), "\n") }()
	row := func(scen, truth, walprobe string, ce [numClassic]colErrs, sub bool, notes string) {
		acc.add(append(append([]string{scen, truth, walprobe}, classicCells(ce, sub)...), notes)...)
	}

	b.Run("apply_delay_1s", func(b *testing.B) {
		for b.Loop() {
			if err := c.SetApplyDelay(ctx, sb, time.Second); err != nil {
				b.Fatal(err)
			}
			r := newRig(b, c, accInterval, standby)
			smp := newSampler(ctx, b, c, sb)
			r.waitTimed(4, 30*time.Second)
			mom := smp.sampleFor(ctx, r.target("standby1"), 30*time.Second, func(time.Duration) time.Duration { return time.Second }, nil)
			vs := r.obs.take("standby1")
			r.stop()
			if err := c.SetApplyDelay(ctx, sb, 0); err != nil {
				b.Fatal(err)
			}
			if len(vs) == 0 {
				b.Fatal("no beats timed")
			}
			var signed []time.Duration
			outside, early := 0, 0
			for _, v := range vs {
				signed = append(signed, v.Delay-time.Second)
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
			we, ce := delayErrs(vs, time.Second), classicErrs(mom)
			b.ReportMetric(ms(pct(we.errs, .99)), "p99-err-ms")
			b.ReportMetric(ms(pct(we.errs, 1)), "max-err-ms")
			b.ReportMetric(ms(pct(bounds(vs), .99)), "p99-bound-ms")
			b.ReportMetric(float64(outside)/float64(len(vs))*100, "%outside-bound")
			b.ReportMetric(float64(early), "early-beats")
			b.ReportMetric(float64(len(vs)), "beats")
			reportClassic(b, ce)
			row("apply_delay_1s", "1000ms per beat",
				fmt.Sprintf("delay %s; error bound p99 %.2fms; delay p50 %.1fms, bias p50 %+.1fms", we.cell(), ms(pct(bounds(vs), .99)), ms(pct(delays(vs), .5)), ms(pct(signed, .5))),
				ce, false,
				fmt.Sprintf("%d beats, %d moments; %d (%.0f%%) beats with |VisibleAt-(commit+1s)| > bound (%d early = impossible)", len(vs), len(mom), outside, float64(outside)/float64(len(vs))*100, early))
		}
	})

	b.Run("fast_standby", func(b *testing.B) {
		for b.Loop() {
			r := newRig(b, c, accInterval, standby)
			smp := newSampler(ctx, b, c, sb)
			r.waitTimed(4, 30*time.Second)
			mom := smp.sampleFor(ctx, r.target("standby1"), 30*time.Second, func(time.Duration) time.Duration { return 0 }, nil)
			vs := r.obs.take("standby1")
			r.stop()
			we, ce := delayErrs(vs, 0), classicErrs(mom)
			b.ReportMetric(ms(pct(bounds(vs), .99)), "p99-bound-ms")
			b.ReportMetric(ms(pct(delays(vs), .99)), "p99-delay-ms")
			b.ReportMetric(ms(pct(delays(vs), .5)), "p50-delay-ms")
			b.ReportMetric(ms(pct(we.errs, .99)), "p99-err-ms")
			b.ReportMetric(float64(len(vs)), "beats")
			reportClassic(b, ce)
			row("fast_standby", "~0 (same host)",
				fmt.Sprintf("delay %s; error bound p99 %.2fms; delay p50 %.2fms", we.cell(), ms(pct(bounds(vs), .99)), ms(pct(delays(vs), .5))),
				ce, false, fmt.Sprintf("%d beats, %d moments", len(vs), len(mom)))
		}
	})

	for _, f := range []struct {
		name        string
		target      spec
		server      *cluster.Server
		inject      func() error
		restore     func() error
		restoreName string
		dur         time.Duration
	}{
		{"receiver_cut_20s", standby, sb, func() error { return c.CutReceiver(ctx, sb) },
			func() error { return c.RestoreReceiver(ctx, sb) }, "RestoreReceiver", 20 * time.Second},
		{"replay_paused_15s", standby, sb, func() error { return c.PauseReplay(ctx, sb) },
			func() error { return c.ResumeReplay(ctx, sb) }, "ResumeReplay", 15 * time.Second},
		{"subscription_disabled_15s", spec{"subscriber", probe.KindSubscriber, c.Subscriber.DSN("walprobe")}, c.Subscriber,
			func() error { return c.DisableSubscription(ctx) },
			func() error { return c.EnableSubscription(ctx) }, "EnableSubscription", 15 * time.Second},
	} {
		b.Run(f.name, func(b *testing.B) {
			for b.Loop() {
				r := newRig(b, c, accInterval, f.target)
				smp := newSampler(ctx, b, c, f.server)
				r.waitTimed(4, 30*time.Second)
				res := runFault(b, r, f.target.name, smp, f.inject, f.dur)
				if err := f.restore(); err != nil {
					b.Fatal(err)
				}
				rec, ok := r.waitState(f.target.name, probe.StateHealthy, 30*time.Second)
				r.stop()
				we, ce := walprobeLagErrs(res.moments), classicErrs(res.moments)
				b.ReportMetric(res.lag.Seconds(), "walprobe-lag-s")
				b.ReportMetric(res.truth.Seconds(), "truth-s")
				b.ReportMetric(ms(res.lag-res.truth), "lag-minus-truth-ms")
				we.report(b, "walprobe")
				reportClassic(b, ce)
				if res.laggingOK {
					b.ReportMetric(res.lagging.Seconds(), "detect-s")
				}
				sub := f.server == c.Subscriber
				row(f.name, fmt.Sprintf("time since the fault (%.2fs at the end)", res.truth.Seconds()),
					fmt.Sprintf("lag %s; at the end %.3fs", we.cell(), res.lag.Seconds()),
					ce, sub, fmt.Sprintf("%d moments; healthy %s after %s", len(res.moments), fmtSec(rec, ok), f.restoreName))
				drow := []string{f.name, fmtSec(res.lagging, res.laggingOK), fmtSec(res.stalled, res.stalledOK)}
				for i := range numClassic {
					if classicCells(ce, sub)[i] == "-" {
						drow = append(drow, "-")
					} else {
						drow = append(drow, fmtSec(res.cross[i], res.crossOK[i]))
					}
				}
				det.add(drow...)
			}
		})
	}

	b.Run("idle_primary_60s", func(b *testing.B) {
		for b.Loop() {
			r := newRig(b, c, accInterval, standby)
			smp := newSampler(ctx, b, c, sb)
			r.waitTimed(4, 30*time.Second)
			if _, ok := r.waitState("standby1", probe.StateHealthy, 30*time.Second); !ok {
				b.Fatal("standby1 not healthy")
			}
			t := r.target("standby1")
			const avSQL = `SELECT format('%s|%s', autoanalyze_count, autovacuum_count) FROM pg_stat_user_tables WHERE relid = 'walprobe.heartbeat'::regclass`
			an0, vac0 := classicPair(ctx, c.Primary, avSQL)
			r.stopWriter()
			bad := map[probe.State]bool{}
			var cross [numClassic]time.Duration
			var crossOK [numClassic]bool
			mom := smp.sampleFor(ctx, t, 60*time.Second, func(time.Duration) time.Duration { return 0 }, func(el time.Duration, m moment) {
				if st := t.State(); st != probe.StateHealthy {
					bad[st] = true
				}
				for i, v := range m.classic {
					if v != nil && *v >= 1 && !crossOK[i] {
						cross[i], crossOK[i] = el, true
					}
				}
			})
			an1, vac1 := classicPair(ctx, c.Primary, avSQL)
			r.stop()
			we, ce := walprobeLagErrs(mom), classicErrs(mom)
			we.report(b, "walprobe")
			reportClassic(b, ce)
			row("idle_primary_60s", "0 (nothing to replicate)", "lag "+we.cell(), ce, false,
				fmt.Sprintf("%d moments; non-healthy states seen: %v; heartbeat autoanalyze count %s->%s, autovacuum %s->%s on the primary", len(mom), keys(bad), fmtF(an0, ""), fmtF(an1, ""), fmtF(vac0, ""), fmtF(vac1, "")))
			drow := []string{"idle_primary_60s (false alarm)", fmt.Sprintf("%v", keys(bad)), "-"}
			for i := range numClassic {
				if i == colSubAge {
					drow = append(drow, "-")
				} else {
					drow = append(drow, fmtSec(cross[i], crossOK[i]))
				}
			}
			det.add(drow...)
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
			pe := delayErrs(p, 0)
			var none [numClassic]colErrs
			row("via_pgbouncer", "~0 (same standby)",
				fmt.Sprintf("delay %s; error bound p99 %.2fms", pe.cell(), ms(pct(bounds(p), .99))),
				none, false,
				fmt.Sprintf("%d beats through pool_mode=transaction; the same standby direct: delay p50 %.2fms p99 %.2fms, bound p99 %.2fms (%d beats)",
					len(p), ms(pct(delays(d), .5)), ms(pct(delays(d), .99)), ms(pct(bounds(d), .99)), len(d)))
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
