package bench

import (
	"context"
	"fmt"
	"os"
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

func BenchmarkScale(b *testing.B) {
	// 1,000 readers need 1,000 sessions on the standby (and its primary).
	c := startCluster(b, cluster.Options{Standbys: 1, ExtraConf: []string{"max_connections = 1200"}})
	sb := c.Standbys[0]
	tb := &table{title: "Scale (N reader targets on one standby, 10s measured; CPU and RSS are the whole bench process: probe, writer, pgx)"}
	tb.add("targets", "interval", "CPU % of one core", "RSS", "p99 error bound", "p99 delay", "beats timed")
	defer func() { fmt.Print(tb.String(), "\n") }()
	for _, sc := range []struct {
		n  int
		iv time.Duration
	}{{10, time.Second}, {100, time.Second}, {1000, time.Second}, {10, 100 * time.Millisecond}, {100, 100 * time.Millisecond}, {1000, 100 * time.Millisecond}} {
		n, iv := sc.n, sc.iv
		b.Run(fmt.Sprintf("targets_%d_interval_%s", n, iv), func(b *testing.B) {
			for b.Loop() {
				var specs []spec
				for i := range n {
					specs = append(specs, spec{fmt.Sprintf("t%03d", i), probe.KindStandby, sb.DSN("walprobe")})
				}
				r := newRig(b, c, iv, specs...)
				r.waitTimed(2, 60*time.Second)
				cpu0, t0 := rusage(), time.Now()
				time.Sleep(10 * time.Second)
				cpu1, wall := rusage(), time.Since(t0)
				rss := rssKB()
				vs := r.obs.all()
				r.stop()
				pctCPU := float64(cpu1-cpu0) / float64(wall) * 100
				b.ReportMetric(pctCPU, "%cpu")
				b.ReportMetric(float64(rss)/1024, "rss-MB")
				b.ReportMetric(ms(pct(bounds(vs), .99)), "p99-bound-ms")
				b.ReportMetric(ms(pct(delays(vs), .99)), "p99-delay-ms")
				tb.add(fmt.Sprint(n), iv.String(), fmt.Sprintf("%.1f%%", pctCPU), fmt.Sprintf("%.1f MB", float64(rss)/1024),
					fmt.Sprintf("%.2fms", ms(pct(bounds(vs), .99))), fmt.Sprintf("%.2fms", ms(pct(delays(vs), .99))), fmt.Sprint(len(vs)))
			}
		})
	}
}
