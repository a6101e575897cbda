package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/launch"
)

var soakFor = flag.Duration("soak", 0, "run the soak this long (e.g. 10m, with -timeout 20m); 0 runs a 20 s smoke of the same loop")

// plan is the shape of one soak run.
type plan struct {
	length time.Duration // whole run
	sample time.Duration // between samples
	fault  time.Duration // between fault starts
	hold   time.Duration // how long a cut or pause lasts
	warmup time.Duration // samples before this are not compared
}

func planFor(d time.Duration) plan {
	if d == 0 {
		return plan{length: 20 * time.Second, sample: 2 * time.Second, fault: 5 * time.Second, hold: 2 * time.Second, warmup: 2 * time.Second}
	}
	return plan{length: d, sample: 10 * time.Second, fault: 30 * time.Second, hold: 8 * time.Second, warmup: 20 * time.Second}
}

// sample is one reading of the process and the servers.
type sample struct {
	at                 time.Duration
	goroutines         float64
	heapLive, heapUsed float64 // bytes: kept by the last GC; allocated now
	rss, fds           float64
	beats, missed      float64
	conns              int // walprobe sessions on all servers
	fault              string
}

// TestSoak runs walprobe at 100 ms beats on a primary and two standbys
// and injects a fault on standby1 every fault period, cycling through
// cutting its WAL receiver, pausing replay and restarting it; standby2 is
// left alone. It samples /metrics (go_goroutines, go_gc_heap_live_bytes,
// process_*) and pg_stat_activity, prints a table, and asserts the last
// third of the samples stays within a bound of the first third.
func TestSoak(t *testing.T) {
	pl := planFor(*soakFor)
	if dl, ok := t.Deadline(); ok && time.Until(dl) < pl.length+2*time.Minute {
		t.Fatalf("-soak %s needs a longer -timeout: run go test ./test/soak -run TestSoak -soak %s -timeout %s -v",
			pl.length, pl.length, (pl.length + 5*time.Minute).Round(time.Minute))
	}
	c := cluster.StartT(t, cluster.Options{Standbys: 2})
	w := launch.Start(context.Background(), t, launch.Options{Args: []string{"run", "--primary", c.Primary.DSN("walprobe"),
		"--standby", "standby1=" + c.Standbys[0].DSN("walprobe"),
		"--standby", "standby2=" + c.Standbys[1].DSN("walprobe"),
		"--interval", "100ms", "--probe-id", "soak"}})
	addr := w.Addr
	ctx, cancel := context.WithTimeout(context.Background(), pl.length+time.Minute)
	defer cancel()

	var mu sync.Mutex // guards faults
	var faults []string
	setFault := func(f string) { mu.Lock(); faults = append(faults, f); mu.Unlock() }
	faultErr := make(chan error, 1)
	begin := time.Now()
	faultsDone := make(chan struct{})
	faultsRun := 0
	go func() {
		defer close(faultsDone)
		faultErr <- injectFaults(ctx, c, pl, begin, setFault, &faultsRun)
	}()

	var samples []sample
	tick := time.NewTicker(pl.sample)
	defer tick.Stop()
	for time.Since(begin) < pl.length {
		<-tick.C
		m, err := scrape(addr)
		if err != nil {
			t.Fatalf("scrape /metrics: %v", err)
		}
		mu.Lock()
		f := strings.Join(faults, ", ")
		faults = faults[:0]
		mu.Unlock()
		if f == "" {
			f = "-"
		}
		samples = append(samples, sample{
			at: time.Since(begin).Round(time.Second), goroutines: m["go_goroutines"],
			heapLive: m["go_gc_heap_live_bytes"], heapUsed: m["go_memstats_heap_alloc_bytes"],
			rss: m["process_resident_memory_bytes"], fds: m["process_open_fds"],
			beats: m["walprobe_beats_total"], missed: m["walprobe_beats_missed_total"],
			conns: connections(ctx, t, c), fault: f,
		})
	}
	cancel()
	<-faultsDone
	if err := <-faultErr; err != nil && ctx.Err() == nil {
		t.Errorf("fault injection: %v", err)
	}
	printTable(t, samples)

	// Recovery: after the last fault standby1 catches up again.
	if err := restoreAll(c); err != nil {
		t.Fatalf("restore standby1: %v", err)
	}
	waitHealthy(t, addr, 30*time.Second)
	if _, err := w.Terminate(15 * time.Second); err != nil {
		t.Errorf("walprobe after SIGTERM: %v", err)
	}
	all := w.Logs()
	if strings.Contains(all, c.Password) {
		t.Error("walprobe's log carries the canary password")
	}

	if faultsRun < 3 {
		t.Errorf("%d faults injected, want at least 3 (one of each kind)", faultsRun)
	}
	last := samples[len(samples)-1]
	wantBeats := 0.8 * pl.length.Seconds() / 0.1
	if last.beats < wantBeats {
		t.Errorf("%.0f beats in %s at 100 ms, want ≥ %.0f", last.beats, pl.length, wantBeats)
	}
	if last.missed > 0 {
		t.Errorf("%.0f beats missed: the primary was never faulted", last.missed)
	}
	for _, msg := range flat(samples, pl.warmup) {
		t.Error(msg)
	}
}

// flat compares the last third of the samples taken after warmup with the
// first third and says what grew beyond its bound. The bounds leave room
// for what a fault legitimately changes (a reconnecting reader, a GC cycle)
// and catch a leak per fault or per beat: at 100 ms, 1 KiB per beat is
// 6 MB in 10 minutes.
func flat(ss []sample, warmup time.Duration) []string {
	var kept []sample
	for _, s := range ss {
		if s.at >= warmup {
			kept = append(kept, s)
		}
	}
	if len(kept) < 3 {
		return []string{fmt.Sprintf("%d samples after warm-up, want at least 3", len(kept))}
	}
	n := len(kept) / 3
	first, last := kept[:n], kept[len(kept)-n:]
	var out []string
	check := func(what string, get func(sample) float64, agg func([]float64) float64, ratio, slack float64) {
		a, b := agg(values(first, get)), agg(values(last, get))
		if b > a*ratio+slack {
			out = append(out, fmt.Sprintf("%s grew from %.0f (first third) to %.0f (last third), bound %.0f", what, a, b, a*ratio+slack))
		}
	}
	check("max goroutines", func(s sample) float64 { return s.goroutines }, slices.Max[[]float64], 1, 5)
	check("median live heap bytes", func(s sample) float64 { return s.heapLive }, median, 1.25, 1<<20)
	check("median RSS bytes", func(s sample) float64 { return s.rss }, median, 1.25, 4<<20)
	check("max open files", func(s sample) float64 { return s.fds }, slices.Max[[]float64], 1, 3)
	check("max server connections", func(s sample) float64 { return float64(s.conns) }, slices.Max[[]float64], 1, 1)
	return out
}

func values(ss []sample, get func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = get(s)
	}
	return out
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// injectFaults cycles standby1 through the three faults until ctx ends or
// the run's length is reached, leaving the standby restored.
func injectFaults(ctx context.Context, c *cluster.Cluster, pl plan, begin time.Time, set func(string), n *int) error {
	s := c.Standbys[0]
	faults := []struct {
		name      string
		do, undo  func(context.Context) error
		instantly bool
	}{
		{name: "cut receiver", do: func(ctx context.Context) error { return c.CutReceiver(ctx, s) },
			undo: func(ctx context.Context) error { return c.RestoreReceiver(ctx, s) }},
		{name: "pause replay", do: func(ctx context.Context) error { return c.PauseReplay(ctx, s) },
			undo: func(ctx context.Context) error { return c.ResumeReplay(ctx, s) }},
		{name: "restart standby", do: func(ctx context.Context) error { return s.Restart(ctx) }, instantly: true},
	}
	for i := 0; ; i++ {
		next := begin.Add(time.Duration(i+1) * pl.fault)
		if next.Add(pl.hold).After(begin.Add(pl.length)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(next)):
		}
		f := faults[i%len(faults)]
		set(f.name)
		if err := f.do(ctx); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*n++
		if !f.instantly {
			select {
			case <-ctx.Done():
			case <-time.After(pl.hold):
			}
			if err := f.undo(context.WithoutCancel(ctx)); err != nil {
				return fmt.Errorf("undo %s: %w", f.name, err)
			}
			set("end " + f.name)
		}
	}
}

// restoreAll undoes whatever fault may still hold on standby1.
func restoreAll(c *cluster.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := c.Standbys[0]
	if err := s.Start(ctx); err != nil {
		return err
	}
	if err := c.RestoreReceiver(ctx, s); err != nil {
		return err
	}
	return c.ResumeReplay(ctx, s)
}

// connections counts walprobe's sessions on every server.
func connections(ctx context.Context, t *testing.T, c *cluster.Cluster) int {
	t.Helper()
	n := 0
	for _, s := range c.Servers() {
		v, err := s.Scalar(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'walprobe'")
		if err != nil {
			continue // a restarting standby
		}
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n
}

var metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)`)

// scrape reads /metrics and sums each family's samples by name.
func scrape(addr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := metricLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err == nil {
			out[m[1]] += v
		}
	}
	for _, k := range []string{"go_goroutines", "go_gc_heap_live_bytes", "process_resident_memory_bytes", "walprobe_beats_total"} {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("no %s in /metrics", k)
		}
	}
	return out, sc.Err()
}

func printTable(t *testing.T, ss []sample) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "t\tgoroutines\tlive heap MB\theap alloc MB\tRSS MB\tfds\tconns\tbeats\tmissed\tfault\t")
	mb := func(v float64) string { return strconv.FormatFloat(v/(1<<20), 'f', 2, 64) }
	for _, s := range ss {
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t%s\t%.0f\t%d\t%.0f\t%.0f\t%s\t\n",
			s.at, s.goroutines, mb(s.heapLive), mb(s.heapUsed), mb(s.rss), s.fds, s.conns, s.beats, s.missed, s.fault)
	}
	w.Flush()
	t.Logf("soak samples:\n%s", b.String())
}

// waitHealthy waits until /v1/state shows every target healthy.
func waitHealthy(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var body string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/v1/state")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			var st struct {
				Targets []struct {
					State string `json:"state"`
				} `json:"targets"`
			}
			ok := json.Unmarshal(b, &st) == nil && len(st.Targets) == 3 // standby1, standby2, stream
			for _, tg := range st.Targets {
				ok = ok && tg.State == "healthy"
			}
			if ok {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("targets not all healthy %s after the soak:\n%s", d, body)
}
