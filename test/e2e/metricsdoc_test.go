package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/launch"
)

// docMetric is one row of docs/metrics.md.
type docMetric struct {
	name, typ, unit string
	labels          []string
	// conditional: the description starts "Only while", a series that
	// exists only in that situation (a primary outage): a healthy scrape
	// need not show it.
	conditional bool
}

// readMetricsDoc parses the table rows of docs/metrics.md:
// | `name` | type | unit | `label`, `label` | description |
// A row | `prefix_*` | documents a whole family of collector metrics.
func readMetricsDoc(t *testing.T) (map[string]docMetric, []string) {
	t.Helper()
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docMetric{}
	name := regexp.MustCompile("^`([a-z_:][a-z0-9_:]*)`$")
	prefix := regexp.MustCompile("^`([a-z_]+_)\\*`$")
	var prefixes []string
	for _, line := range strings.Split(string(b), "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 6 {
			continue
		}
		for i := range cols {
			cols[i] = strings.TrimSpace(cols[i])
		}
		if m := prefix.FindStringSubmatch(cols[1]); m != nil {
			prefixes = append(prefixes, m[1])
			continue
		}
		m := name.FindStringSubmatch(cols[1])
		if m == nil {
			continue
		}
		d := docMetric{name: m[1], typ: cols[2], unit: cols[3], conditional: strings.HasPrefix(cols[5], "Only while")}
		for _, l := range regexp.MustCompile("`([a-z_][a-z0-9_]*)`").FindAllStringSubmatch(cols[4], -1) {
			d.labels = append(d.labels, l[1])
		}
		sort.Strings(d.labels)
		out[d.name] = d
	}
	if len(out) < 10 {
		t.Fatalf("docs/metrics.md: only %d metric rows parsed", len(out))
	}
	return out, prefixes
}

// scrapedMetric is one metric family of a /metrics scrape.
type scrapedMetric struct {
	typ    string
	labels map[string]bool
}

// parseExposition reads the Prometheus text format: families from # TYPE
// lines, label names from every sample (le and quantile belong to the
// histogram, not to the metric).
func parseExposition(text string) map[string]*scrapedMetric {
	fams := map[string]*scrapedMetric{}
	var names []string // longest first, to map samples to families
	labelRe := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			fams[f[2]] = &scrapedMetric{typ: f[3], labels: map[string]bool{}}
			names = append(names, f[2])
		}
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sample := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			sample = line[:i]
		}
		for _, n := range names {
			if sample == n || strings.HasPrefix(sample, n+"_") && fams[n].typ == "histogram" {
				if i := strings.Index(line, "{"); i >= 0 {
					for _, m := range labelRe.FindAllStringSubmatch(line[i:strings.LastIndex(line, "}")+1], -1) {
						if m[1] != "le" && m[1] != "quantile" {
							fams[n].labels[m[1]] = true
						}
					}
				}
				break
			}
		}
	}
	return fams
}

// TestMetricsDocumented runs the binary on a cluster with every kind of
// target (standby, subscriber, pgbouncer endpoint, the stream), an SLO and
// one missed beat, scrapes /metrics, and checks docs/metrics.md against
// it: every exported metric documented with its type and exact label set,
// and every documented metric exported.
func TestMetricsDocumented(t *testing.T) {
	doc, prefixes := readMetricsDoc(t)
	c := cluster.StartT(t, cluster.Options{Standbys: 1, Subscriber: true, PgBouncer: true})
	// Resource attributes become target_info labels: keep the
	// environment's OTEL_* (and WALPROBE_*) out of the scrape.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") && !strings.HasPrefix(kv, "WALPROBE_") {
			env = append(env, kv)
		}
	}
	w := launch.Start(t.Context(), t, launch.Options{Env: env, OnlyEnv: true, Args: []string{"run", "--primary", c.Primary.DSN("walprobe"),
		"--standby", "standby1=" + c.Standbys[0].DSN("walprobe"),
		"--subscriber", "sub=" + c.Subscriber.DSN("walprobe"),
		"--endpoint", "bouncer=" + c.PgBouncer.DSN("walprobe"),
		"--interval", "200ms", "--probe-id", "metricsdoc",
		"--slo-objective", "0.999", "--slo-threshold", "500ms"}})
	addr := w.Addr
	scrape := func() string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// One missed beat: end the writer's session while it is connected.
	ctx := context.Background()
	fakes.WaitFor(t.Context(), t, 20*time.Second, "the first beats", func() bool { return strings.Contains(scrape(), "\nwalprobe_beats_total") })
	if _, err := c.Primary.Scalar(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'walprobe' AND query LIKE 'INSERT INTO walprobe.heartbeat%'`); err != nil {
		t.Fatal(err)
	}
	var text string
	var fams map[string]*scrapedMetric
	missing := func() []string {
		var out []string
		for name, d := range doc {
			if _, ok := fams[name]; !ok && !d.conditional {
				out = append(out, name)
			}
		}
		sort.Strings(out)
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		text = scrape()
		fams = parseExposition(text)
		if len(missing()) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, name := range missing() {
		t.Errorf("docs/metrics.md documents %s, which a scrape with every kind of target, an SLO and a missed beat does not show", name)
	}
	var names []string
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f := fams[name]
		if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue // a collector family documented as a whole
		}
		d, ok := doc[name]
		if !ok {
			t.Errorf("%s (%s, labels %v) is exported but not in docs/metrics.md", name, f.typ, sortedSet(f.labels))
			continue
		}
		if d.typ != f.typ {
			t.Errorf("%s: docs/metrics.md says %s, /metrics says %s", name, d.typ, f.typ)
		}
		if u := unitOf(name); d.unit != u {
			t.Errorf("%s: unit %q in docs/metrics.md, its name says %q", name, d.unit, u)
		}
		if got, want := strings.Join(sortedSet(f.labels), ","), strings.Join(d.labels, ","); got != want {
			t.Errorf("%s: labels %s, docs/metrics.md says %s", name, got, want)
		}
	}
	if strings.Contains(text, c.Password) {
		t.Error("/metrics carries the canary password")
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", text)
	}
}

// unitOf is the unit the Prometheus exporter's suffix names.
func unitOf(name string) string {
	name = strings.TrimSuffix(name, "_total")
	for _, u := range []string{"seconds", "bytes", "ratio"} {
		if strings.HasSuffix(name, "_"+u) {
			return u
		}
	}
	return "1"
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
