package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
)

// upsertSQL is the writer's statement (heartbeat/writer.go).
const upsertSQL = `INSERT INTO ` + heartbeat.QualTable + ` AS h (probe_id, seq, written_at)
VALUES ($1, 1, clock_timestamp())
ON CONFLICT (probe_id) DO UPDATE SET seq = h.seq + 1, written_at = EXCLUDED.written_at
RETURNING seq, written_at, pg_current_wal_insert_lsn()::text`

func scalarInt(b *testing.B, s *cluster.Server, sql string, args ...any) int64 {
	b.Helper()
	got, err := s.Scalar(context.Background(), sql, args...)
	if err != nil {
		b.Fatal(err)
	}
	n, err := strconv.ParseInt(got, 10, 64)
	if err != nil {
		b.Fatalf("%s: %q: %v", sql, got, err)
	}
	return n
}

func BenchmarkCost(b *testing.B) {
	c := startCluster(b, cluster.Options{Standbys: 1})
	sb := c.Standbys[0]
	tb := &table{title: "Cost"}
	tb.add("measure", "value", "how")
	defer func() { fmt.Print(tb.String(), "\n") }()

	b.Run("wal_per_beat", func(b *testing.B) {
		for b.Loop() {
			r := newRig(b, c, heartbeat.MinInterval) // writer only, no readers
			for r.obs.beatCount() < 5 {
				time.Sleep(20 * time.Millisecond)
			}
			lsn0, _ := c.Primary.Scalar(context.Background(), "SELECT pg_current_wal_lsn()::text")
			n0 := r.obs.beatCount()
			for r.obs.beatCount() < n0+100 {
				time.Sleep(20 * time.Millisecond)
			}
			lsn1, _ := c.Primary.Scalar(context.Background(), "SELECT pg_current_wal_lsn()::text")
			n1 := r.obs.beatCount()
			r.stop()
			diff := scalarInt(b, c.Primary, "SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::int8", lsn1, lsn0)
			per := float64(diff) / float64(n1-n0)
			b.ReportMetric(per, "wal-B/beat")
			tb.add("WAL per beat", fmt.Sprintf("%.0f B", per), fmt.Sprintf("pg_current_wal_lsn diff %d B over %d beats at 100ms, idle primary (includes any background WAL)", diff, n1-n0))
		}
	})

	b.Run("statements_per_beat", func(b *testing.B) {
		for b.Loop() {
			r := newRig(b, c, time.Second, spec{"standby1", probe.KindStandby, sb.DSN("walprobe")})
			r.waitTimed(2, 30*time.Second)
			time.Sleep(10 * time.Second)
			const q = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'walprobe'"
			onPrimary := scalarInt(b, c.Primary, q)
			onStandby := scalarInt(b, sb, q)
			r.stop()
			polls, beats := r.readers["standby1"].Polls(), r.obs.beatCount()
			b.ReportMetric(float64(polls)/float64(beats), "stmts/beat")
			b.ReportMetric(float64(onPrimary), "conns-primary")
			b.ReportMetric(float64(onStandby), "conns-standby")
			tb.add("statements per beat per healthy target", fmt.Sprintf("%.2f", float64(polls)/float64(beats)),
				fmt.Sprintf("Reader.Polls()=%d / beats=%d, 1 standby, 1s interval, ~12s", polls, beats))
			tb.add("connections held (application_name walprobe)", fmt.Sprintf("primary %d, standby %d", onPrimary, onStandby),
				"pg_stat_activity during the run: writer on the primary, one reader on the standby")
		}
	})

	b.Run("polls_per_beat_delayed", func(b *testing.B) {
		for b.Loop() {
			pollsPerBeatDelayed(b, tb)
		}
	})

	b.Run("table_size_10k_upserts", func(b *testing.B) {
		for b.Loop() {
			ctx := context.Background()
			conn, err := c.Primary.Connect(ctx, "walprobe")
			if err != nil {
				b.Fatal(err)
			}
			begin := time.Now()
			const n = 10000
			for range n {
				if _, err := conn.Exec(ctx, upsertSQL, "bench_size"); err != nil {
					b.Fatal(err)
				}
			}
			took := time.Since(begin)
			conn.Close(ctx)
			heap := scalarInt(b, c.Primary, "SELECT pg_relation_size('walprobe.heartbeat')")
			total := scalarInt(b, c.Primary, "SELECT pg_total_relation_size('walprobe.heartbeat')")
			b.ReportMetric(float64(heap), "heap-B")
			b.ReportMetric(float64(total), "total-B")
			b.ReportMetric(n/took.Seconds(), "upserts/s")
			tb.add("heartbeat table after 10,000 upserts", fmt.Sprintf("heap %d B (%d pages), total with index %d B", heap, heap/8192, total),
				fmt.Sprintf("pg_relation_size / pg_total_relation_size; %.0f upserts/s on one connection", n/took.Seconds()))
		}
	})
}

func rusage() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssKB reads VmRSS from /proc/self/status.
func rssKB() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// scaleSettle is how long the scale benchmark waits after every target has
// timed two beats before it starts measuring: the start-up connects (SCRAM
// is deliberately expensive) and the garbage they leave are not the steady
// state a long-running probe pays for.
const scaleSettle = 3 * time.Second

// scaleWindow is the measured steady-state window.
const scaleWindow = 10 * time.Second

// profileDir, when WALPROBE_BENCH_PROFILE names a directory, receives a CPU
// profile of each scale scenario's steady window and a heap profile at its
// end (go tool pprof reads both).
var profileDir = os.Getenv("WALPROBE_BENCH_PROFILE")

func BenchmarkScale(b *testing.B) {
	// 1,000 readers need 1,000 sessions on the standby (and its primary).
	c := startCluster(b, cluster.Options{Standbys: 1, ExtraConf: []string{"max_connections = 1200"}})
	sb := c.Standbys[0]
	tb := &table{title: fmt.Sprintf("Scale (N reader targets on one standby; steady state: %v measured after every target timed 2 beats and %v settling; CPU is process CPU time (rusage) of the whole bench process: probe, writer, pgx; RSS at the end of the window)", scaleWindow, scaleSettle)}
	tb.add("targets", "interval", "CPU % of one core", "RSS", "p99 error bound", "p99 delay", "polls/beat/target", "beats timed", "beats missed", "start-up")
	defer func() { fmt.Print(tb.String(), "\n") }()
	for _, sc := range []struct {
		n  int
		iv time.Duration
	}{{10, time.Second}, {100, time.Second}, {1000, time.Second}, {10, 100 * time.Millisecond}, {100, 100 * time.Millisecond}, {1000, 100 * time.Millisecond}} {
		n, iv := sc.n, sc.iv
		name := fmt.Sprintf("targets_%d_interval_%s", n, iv)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				var specs []spec
				for i := range n {
					specs = append(specs, spec{fmt.Sprintf("t%04d", i), probe.KindStandby, sb.DSN("walprobe")})
				}
				cpuS, tS := rusage(), time.Now()
				r := newRigLight(b, c, iv, specs...)
				r.waitTimed(2, 120*time.Second)
				cpuUp, up := rusage()-cpuS, time.Since(tS)
				time.Sleep(scaleSettle)
				r.obs.reset()
				polls0 := r.polls()
				beats0, missed0, downs0 := r.obs.beatCount(), r.p.Snapshot().BeatsMissed, r.obs.downCount()
				stopProfile := startProfile(b, name)
				cpu0, t0 := rusage(), time.Now()
				time.Sleep(scaleWindow)
				cpu1, wall := rusage(), time.Since(t0)
				stopProfile()
				rss := rssKB()
				var ms0 runtime.MemStats
				runtime.ReadMemStats(&ms0)
				downs := r.obs.downCount() - downs0
				beats, missed := r.obs.beatCount()-beats0, r.p.Snapshot().BeatsMissed-missed0
				polls := r.polls() - polls0
				// Beats acked in the window that a target had not timed
				// half a second after the window (a generous grace: the
				// loaded standby's p99 delay is tens of ms).
				time.Sleep(500 * time.Millisecond)
				vs := r.obs.all()
				r.stop()
				var names []string
				for _, sp := range specs {
					names = append(names, sp.name)
				}
				untimed := untimedBeats(vs, r.obs.acked(), t0, t0.Add(wall), names)
				pctCPU := float64(cpu1-cpu0) / float64(wall) * 100
				perBeat := float64(polls) / float64(max(beats, 1)) / float64(n)
				b.ReportMetric(pctCPU, "%cpu")
				b.ReportMetric(float64(rss)/1024, "rss-MiB")
				b.ReportMetric(ms(pct(bounds(vs), .99)), "p99-bound-ms")
				b.ReportMetric(ms(pct(delays(vs), .99)), "p99-delay-ms")
				b.ReportMetric(perBeat, "polls/beat/target")
				b.ReportMetric(float64(missed), "writer-missed")
				b.ReportMetric(float64(untimed), "untimed-target-beats")
				b.ReportMetric(float64(downs), "target-downs")
				b.ReportMetric(float64(ms0.HeapAlloc)/(1<<20), "heap-MiB")
				b.ReportMetric(float64(ms0.StackInuse)/(1<<20), "stacks-MiB")
				b.ReportMetric(cpuUp.Seconds(), "startup-cpu-s")
				b.ReportMetric(up.Seconds(), "startup-s")
				tb.add(fmt.Sprint(n), iv.String(), fmt.Sprintf("%.1f%%", pctCPU), fmt.Sprintf("%.1f MiB (heap %.1f, stacks %.1f)", float64(rss)/1024, float64(ms0.HeapAlloc)/(1<<20), float64(ms0.StackInuse)/(1<<20)),
					fmt.Sprintf("%.2fms", ms(pct(bounds(vs), .99))), fmt.Sprintf("%.2fms", ms(pct(delays(vs), .99))),
					fmt.Sprintf("%.2f", perBeat), fmt.Sprint(len(vs)),
					fmt.Sprintf("writer %d of %d, untimed %d of %d, %d target downs", missed, beats+missed, untimed, beats*int64(n), downs),
					fmt.Sprintf("%.1fs wall, %.1f CPU-s", up.Seconds(), cpuUp.Seconds()))
			}
		})
	}
}

// untimedBeats counts (target, beat) pairs, for the beats acked in
// [from, to), that no visibility in vs timed.
func untimedBeats(vs []probe.Visibility, acked []heartbeat.Beat, from, to time.Time, targets []string) int64 {
	timed := make(map[string]map[int64]bool, len(targets))
	for _, v := range vs {
		m := timed[v.Target]
		if m == nil {
			m = map[int64]bool{}
			timed[v.Target] = m
		}
		m[v.Beat.Seq] = true
	}
	var n int64
	for _, b := range acked {
		if b.Acked.Before(from) || !b.Acked.Before(to) {
			continue
		}
		for _, t := range targets {
			if !timed[t][b.Seq] {
				n++
			}
		}
	}
	return n
}

// startProfile starts a CPU profile into profileDir (no-op when unset) and
// returns the function that stops it and writes a heap profile.
func startProfile(b *testing.B, name string) func() {
	if profileDir == "" {
		return func() {}
	}
	cpu, err := os.Create(filepath.Join(profileDir, "cpu-"+name+".pprof"))
	if err != nil {
		b.Fatalf("WALPROBE_BENCH_PROFILE: %v", err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		b.Fatalf("cpu profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		cpu.Close()
		heap, err := os.Create(filepath.Join(profileDir, "heap-"+name+".pprof"))
		if err != nil {
			b.Fatalf("WALPROBE_BENCH_PROFILE: %v", err)
		}
		defer heap.Close()
		if err := pprof.Lookup("heap").WriteTo(heap, 0); err != nil {
			b.Fatalf("heap profile: %v", err)
		}
	}
}

// pollsPerBeatDelayed runs three standbys with recovery_min_apply_delay
// 1 s, 30 s and 5 min side by side at a 1 s interval and counts each
// reader's statements per beat once its delay is learnt (the first beat
// timed plus four), over 60 s. The old schedule's dense window grew with
// the delay (104 statements per beat at 20 s and 200 ms beats); now it
// grows with the delays' scatter only.
func pollsPerBeatDelayed(b *testing.B, tb *table) {
	ctx := context.Background()
	c := startCluster(b, cluster.Options{Standbys: 3})
	delays := []time.Duration{time.Second, 30 * time.Second, 5 * time.Minute}
	var specs []spec
	for i, d := range delays {
		if err := c.SetApplyDelay(ctx, c.Standbys[i], d); err != nil {
			b.Fatal(err)
		}
		specs = append(specs, spec{c.Standbys[i].Name, probe.KindStandby, c.Standbys[i].DSN("walprobe")})
	}
	r := newRig(b, c, time.Second, specs...)
	defer r.stop()
	for i, d := range delays {
		name := c.Standbys[i].Name
		deadline := time.Now().Add(d + 60*time.Second)
		for len(r.obs.all()) == 0 || countFor(r.obs.all(), name) < 5 {
			if time.Now().After(deadline) {
				b.Fatalf("%s (apply delay %v): fewer than 5 beats timed", name, d)
			}
			time.Sleep(200 * time.Millisecond)
		}
		rd := r.readers[name]
		p0, n0 := rd.Polls(), countFor(r.obs.all(), name)
		time.Sleep(60 * time.Second)
		p1, n1 := rd.Polls(), countFor(r.obs.all(), name)
		per := float64(p1-p0) / float64(max(n1-n0, 1))
		b.ReportMetric(per, fmt.Sprintf("polls/beat-%v", d))
		tb.add(fmt.Sprintf("polls per beat, apply delay %v", d), fmt.Sprintf("%.2f", per),
			fmt.Sprintf("Reader.Polls() %d over %d beats timed in 60 s once the delay was learnt, 1 s interval", p1-p0, n1-n0))
	}
}

func countFor(vis []probe.Visibility, target string) int {
	n := 0
	for _, v := range vis {
		if v.Target == target {
			n++
		}
	}
	return n
}
