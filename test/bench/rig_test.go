// Package bench measures walprobe against real PostgreSQL servers started
// by test/cluster: accuracy of visibility timing against known ground
// truth, detection speed next to the classic numbers, cost on the primary,
// and how the probe scales with targets. Run it with `make bench`; every
// benchmark runs its scenario once (-benchtime 1x), reports numbers with
// b.ReportMetric for benchstat and logs a human table.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/inproc"
)

const probeID = "bench"

var quiet = slog.New(slog.DiscardHandler)

// startCluster starts one cluster for a top-level benchmark; StartT
// registers Close with b.Cleanup.
func startCluster(b *testing.B, o cluster.Options) *cluster.Cluster {
	b.Helper()
	o.Logf = func(string, ...any) {}
	c := cluster.StartT(b, o)
	b.Logf("cluster up in %v", c.StartupTime.Round(time.Millisecond))
	return c
}

// collector keeps every visibility and counts beats.
type collector struct {
	probe.NopObserver
	mu    sync.Mutex
	vis   map[string][]probe.Visibility
	beats int64
	seqs  []heartbeat.Beat // every acked beat, in order
	downs int64            // transitions to down (a poll failed or timed out)
	// light keeps compactVis records only (take returns nothing; all
	// returns them as partial visibilities).
	light   bool
	compact []compactVis
	counts  map[string]int // visibilities per target since the last reset
}

func (c *collector) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[name]
}

func (c *collector) Transition(t probe.TransitionEvent) {
	if t.To != probe.StateDown {
		return
	}
	c.mu.Lock()
	c.downs++
	c.mu.Unlock()
}

func (c *collector) downCount() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.downs
}

func (c *collector) Beat(b heartbeat.Beat) {
	c.mu.Lock()
	c.beats++
	c.seqs = append(c.seqs, b)
	c.mu.Unlock()
}

func (c *collector) acked() []heartbeat.Beat {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.seqs)
}

// compactVis is what the scale benchmark keeps of a visibility: at 1,000
// targets full records would add megabytes of the benchmark's own to the
// RSS it measures.
type compactVis struct {
	target            string
	seq               int64
	delay, errorBound time.Duration
}

func (c *collector) Visible(v probe.Visibility) {
	c.mu.Lock()
	c.counts[v.Target]++
	if c.light {
		c.compact = append(c.compact, compactVis{v.Target, v.Beat.Seq, v.Delay, v.ErrorBound})
	} else {
		c.vis[v.Target] = append(c.vis[v.Target], v)
	}
	c.mu.Unlock()
}

func (c *collector) take(name string) []probe.Visibility {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.vis[name])
}

func (c *collector) all() []probe.Visibility {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []probe.Visibility
	for _, v := range c.vis {
		out = append(out, v...)
	}
	for _, v := range c.compact {
		out = append(out, probe.Visibility{Target: v.target, Beat: heartbeat.Beat{Seq: v.seq}, Delay: v.delay, ErrorBound: v.errorBound})
	}
	return out
}

func (c *collector) reset() {
	c.mu.Lock()
	c.vis = map[string][]probe.Visibility{}
	c.counts = map[string]int{}
	c.compact = nil
	c.mu.Unlock()
}

func (c *collector) beatCount() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.beats
}

type spec struct {
	name string
	kind probe.Kind
	dsn  string
}

// rig is one probe: hub, writer and readers, as `walprobe run` wires them
// (test/inproc), with a collector observing it.
type rig struct {
	b        *testing.B
	run      *inproc.Running
	p        *probe.Probe
	obs      *collector
	readers  map[string]*probe.Reader
	interval time.Duration
}

func newRig(b *testing.B, c *cluster.Cluster, interval time.Duration, specs ...spec) *rig {
	b.Helper()
	return startRig(b, c, interval, false, specs)
}

// newRigLight is newRig with a collector that keeps compact records only
// (for the scale benchmark, which measures the process's RSS).
func newRigLight(b *testing.B, c *cluster.Cluster, interval time.Duration, specs ...spec) *rig {
	b.Helper()
	return startRig(b, c, interval, true, specs)
}

func startRig(b *testing.B, c *cluster.Cluster, interval time.Duration, light bool, specs []spec) *rig {
	b.Helper()
	targets := make([]inproc.Target, 0, len(specs))
	for _, s := range specs {
		targets = append(targets, inproc.Target{Name: s.name, Kind: s.kind, DSN: s.dsn})
	}
	run := inproc.New(context.Background(), b, inproc.Config{Primary: c.Primary.DSN("walprobe"), ProbeID: probeID, Interval: interval,
		Targets: targets, NoCheck: true, Logger: quiet})
	r := &rig{b: b, run: run, p: run.Probe, readers: run.Readers, interval: interval,
		obs: &collector{vis: map[string][]probe.Visibility{}, counts: map[string]int{}, light: light}}
	r.p.Observe(r.obs)
	run.Start()
	return r
}

// stopWriter pauses the writer: the primary goes idle, and no interval
// counts as missed.
func (r *rig) stopWriter() { r.run.Writer.SetPaused(true) }

// stop ends every goroutine; Reader.Polls is readable afterwards.
func (r *rig) stop() { r.run.Stop() }

// polls sums Reader.Polls over the rig's readers.
func (r *rig) polls() int64 {
	var n int64
	for _, rd := range r.readers {
		n += rd.Polls()
	}
	return n
}

func (r *rig) target(name string) *probe.Target {
	t, ok := r.p.Target(name)
	if !ok {
		r.b.Fatalf("no target %q", name)
	}
	return t
}

// waitTimed waits until every target has timed at least n beats, then
// forgets the warm-up visibilities.
func (r *rig) waitTimed(n int, timeout time.Duration) {
	r.b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for name := range r.readers {
			if r.obs.count(name) < n {
				ok = false
				break
			}
		}
		if ok {
			r.obs.reset()
			return
		}
		if time.Now().After(deadline) {
			r.b.Fatalf("targets did not time %d beats within %v: %+v", n, timeout, r.p.Snapshot().Targets)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitState waits until the target reaches st and returns how long it took.
func (r *rig) waitState(name string, st probe.State, timeout time.Duration) (time.Duration, bool) {
	begin := time.Now()
	t := r.target(name)
	for time.Since(begin) < timeout {
		if t.State() == st {
			return time.Since(begin), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return timeout, false
}

// pct returns the q-quantile (nearest rank) of ds.
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func delays(vs []probe.Visibility) []time.Duration {
	out := make([]time.Duration, len(vs))
	for i, v := range vs {
		out[i] = v.Delay
	}
	return out
}

func bounds(vs []probe.Visibility) []time.Duration {
	out := make([]time.Duration, len(vs))
	for i, v := range vs {
		out[i] = v.ErrorBound
	}
	return out
}

// classicPair runs a query returning two numbers as 'a|b' (either may be
// empty for NULL).
func classicPair(ctx context.Context, s *cluster.Server, sql string) (a, b *float64) {
	got, err := s.Scalar(ctx, sql)
	if err != nil {
		return nil, nil
	}
	x, y, _ := strings.Cut(got, "|")
	return parseF(x), parseF(y)
}

func parseF(s string) *float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return nil
	}
	return &f
}

func fmtF(f *float64, unit string) string {
	if f == nil {
		return "NULL"
	}
	return fmt.Sprintf("%.3f%s", *f, unit)
}

func fmtSec(d time.Duration, ok bool) string {
	if !ok {
		return "never"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// table renders rows with aligned columns for b.Log.
type table struct {
	title string
	rows  [][]string
}

func (t *table) add(cols ...string) { t.rows = append(t.rows, cols) }

func (t *table) String() string {
	var sb strings.Builder
	sb.WriteString("\n== " + t.title + " ==\n")
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	for _, r := range t.rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	w.Flush()
	return sb.String()
}
