package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
)

// sampleEvery is how often the accuracy scenarios read walprobe and every
// classic number.
const sampleEvery = 100 * time.Millisecond

// Classic columns of the accuracy and detection tables.
const (
	colReplayTS  = iota // now() - pg_last_xact_replay_timestamp() on the standby
	colExporter         // the exporter-style CASE query on the standby
	colReplayLag        // pg_stat_replication.replay_lag on the primary
	colSubAge           // now() - latest_end_time from pg_stat_subscription
	numClassic
)

var classicNames = [numClassic]string{"replay-ts age", "exporter-style", "pg_stat_replication.replay_lag", "pg_stat_subscription age"}

// classicKeys name the columns in benchstat metric units.
var classicKeys = [numClassic]string{"replayts", "exporter", "replaylag", "subage"}

// moment is everything read at one sampling moment. A classic value is nil
// when the server returned NULL or no row: unknown, never 0.
type moment struct {
	truth    time.Duration
	walprobe *time.Duration // walprobe's lag (nil before the first poll)
	classic  [numClassic]*float64
}

// sampler reads the classic numbers for one target on its own superuser
// connections (opened once, so a sample costs one query per server), the
// way a dashboard or exporter would at the same moment.
type sampler struct {
	server  *pgx.Conn // the standby or the subscriber
	primary *pgx.Conn
	sub     bool   // the target is the subscriber
	appName string // the target's pg_stat_replication.application_name
}

func newSampler(ctx context.Context, b *testing.B, c *cluster.Cluster, srv *cluster.Server) *sampler {
	b.Helper()
	s := &sampler{sub: srv == c.Subscriber, appName: srv.Name}
	if s.sub {
		s.appName = cluster.SubscriptionName
	}
	var err error
	if s.server, err = srv.Connect(ctx, "postgres"); err != nil {
		b.Fatal(err)
	}
	if s.primary, err = c.Primary.Connect(ctx, "postgres"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.server.Close(context.Background())
		s.primary.Close(context.Background())
	})
	return s
}

const (
	standbySampleSQL = `SELECT
  (CASE WHEN NOT pg_is_in_recovery() THEN 0
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
        ELSE GREATEST(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())) END)::float8,
  extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8`
	subscriberSampleSQL = `SELECT extract(epoch FROM now() - max(latest_end_time))::float8 FROM pg_stat_subscription`
	replayLagSQL        = `SELECT extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication WHERE application_name = $1`
)

// read takes one moment's classic numbers.
func (s *sampler) read(ctx context.Context) [numClassic]*float64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var out [numClassic]*float64
	if s.sub {
		_ = s.server.QueryRow(ctx, subscriberSampleSQL).Scan(&out[colSubAge])
	} else {
		_ = s.server.QueryRow(ctx, standbySampleSQL).Scan(&out[colExporter], &out[colReplayTS])
	}
	// No row (the walsender is gone) reads as NULL.
	_ = s.primary.QueryRow(ctx, replayLagSQL, s.appName).Scan(&out[colReplayLag])
	return out
}

// sample reads walprobe's lag of t (nil: none) and the classic numbers.
func (s *sampler) sample(ctx context.Context, t *probe.Target, truth time.Duration) moment {
	m := moment{truth: truth}
	if t != nil {
		if lag, ok := t.Lag(); ok {
			m.walprobe = &lag
		}
	}
	m.classic = s.read(ctx)
	return m
}

// sampleFor samples every sampleEvery for d, with truth(elapsed) as the
// ground truth of each moment; each(elapsed, m) sees every moment.
func (s *sampler) sampleFor(ctx context.Context, t *probe.Target, d time.Duration, truth func(time.Duration) time.Duration, each func(time.Duration, moment)) []moment {
	var out []moment
	start := time.Now()
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for time.Since(start) < d {
		<-tick.C
		el := time.Since(start)
		m := s.sample(ctx, t, truth(el))
		out = append(out, m)
		if each != nil {
			each(el, m)
		}
	}
	return out
}

// colErrs is one column's absolute errors against truth and how many
// moments it was NULL.
type colErrs struct {
	errs  []time.Duration
	nulls int
	n     int
}

func (c *colErrs) add(v *time.Duration, truth time.Duration) {
	c.n++
	if v == nil {
		c.nulls++
		return
	}
	d := *v - truth
	c.errs = append(c.errs, max(d, -d))
}

func secsDur(f *float64) *time.Duration {
	if f == nil {
		return nil
	}
	d := time.Duration(*f * float64(time.Second))
	return &d
}

// classicErrs computes every classic column's errors over ms.
func classicErrs(ms []moment) [numClassic]colErrs {
	var out [numClassic]colErrs
	for _, m := range ms {
		for i := range numClassic {
			out[i].add(secsDur(m.classic[i]), m.truth)
		}
	}
	return out
}

// walprobeLagErrs computes walprobe's lag errors over ms.
func walprobeLagErrs(ms []moment) colErrs {
	var c colErrs
	for _, m := range ms {
		c.add(m.walprobe, m.truth)
	}
	return c
}

// cell renders "p99 X, max Y" of a column's absolute error.
func (c colErrs) cell() string {
	if c.n == 0 {
		return "-"
	}
	if len(c.errs) == 0 {
		return fmt.Sprintf("NULL at all %d moments", c.n)
	}
	s := fmt.Sprintf("p99 %s, max %s", fmtDur(pct(c.errs, .99)), fmtDur(pct(c.errs, 1)))
	if c.nulls > 0 {
		s += fmt.Sprintf(" (NULL %d/%d)", c.nulls, c.n)
	}
	return s
}

// report adds the column's p99 and max error as benchstat metrics.
func (c colErrs) report(b *testing.B, key string) {
	if len(c.errs) == 0 {
		return
	}
	b.ReportMetric(ms(pct(c.errs, .99)), key+"-p99-err-ms")
	b.ReportMetric(ms(pct(c.errs, 1)), key+"-max-err-ms")
}

func fmtDur(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fms", ms(d))
}

// classicCells renders the four classic columns; columns that do not apply
// to the target's kind read "-".
func classicCells(ce [numClassic]colErrs, sub bool) []string {
	out := make([]string, numClassic)
	for i := range numClassic {
		applies := (i == colSubAge) == sub || i == colReplayLag
		if applies {
			out[i] = ce[i].cell()
		} else {
			out[i] = "-"
		}
	}
	return out
}

func reportClassic(b *testing.B, ce [numClassic]colErrs) {
	for i := range numClassic {
		ce[i].report(b, classicKeys[i])
	}
}

func accuracyHeader() []string {
	return append([]string{"scenario", "truth", "walprobe |err| vs truth"}, append(classicHeader(), "notes")...)
}

func classicHeader() []string {
	out := make([]string, numClassic)
	for i, n := range classicNames {
		out[i] = n + " |err|"
	}
	return out
}

func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}
