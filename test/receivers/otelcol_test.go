package receivers

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/launch"
)

// applyDelay is the standby's recovery_min_apply_delay in these tests: a
// beat becomes visible there about this long after its commit, so the
// numbers the receivers get are recognisably walprobe's measurement.
const applyDelay = time.Second

// startCollector runs the OpenTelemetry Collector with an OTLP receiver on
// free 127.0.0.1 ports (gRPC and HTTP), a batch processor, and the debug
// exporter at verbosity detailed writing to stdout. It returns the
// process and the two receiver addresses.
func startCollector(t *testing.T) (p *proc, grpcAddr, httpAddr string) {
	t.Helper()
	bin := receiverBin(t, "WALPROBE_OTELCOL", "otelcol")
	ports := freePorts(t, 2)
	grpcAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	httpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	conf := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
processors:
  batch:
    timeout: 200ms
exporters:
  debug:
    verbosity: detailed
    # Its own logger on stdout, apart from the collector's log on stderr.
    use_internal_logger: false
    # zap's sampler would drop repeated summary lines; print everything.
    sampling_initial: 1000000
    sampling_thereafter: 1
service:
  telemetry:
    # No self-metrics server on :8888: other collectors may run here.
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
`, grpcAddr, httpAddr)
	path := filepath.Join(t.TempDir(), "otelcol.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p = startProc(t, "otelcol", bin, nil, "--config", path)
	waitListening(t, p, 30*time.Second, grpcAddr, httpAddr)
	return p, grpcAddr, httpAddr
}

// TestCollector exports walprobe's metrics and beat traces over OTLP gRPC
// and OTLP/HTTP to a real OpenTelemetry Collector and reads back what the
// collector's debug exporter printed: the resource, the metric names,
// units and target attributes, the lag of a standby delayed by
// applyDelay, one root span per beat with a child per target carrying the
// database semantic-convention attributes, and no canary password.
func TestCollector(t *testing.T) {
	col, grpcAddr, httpAddr := startCollector(t)
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	if err := c.SetApplyDelay(t.Context(), c.Standbys[0], applyDelay); err != nil {
		t.Fatal(err)
	}
	bin := launch.Binary(t)

	tests := []struct {
		name  string
		probe string
		args  []string
	}{
		{"grpc", "otelcol-grpc", []string{"--otlp-endpoint", grpcAddr, "--otlp-protocol", "grpc", "--otlp-insecure"}},
		{"http", "otelcol-http", []string{"--otlp-endpoint", "http://" + httpAddr, "--otlp-protocol", "http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run",
				"--primary", c.Primary.DSN("walprobe"),
				"--standby", "standby1=" + c.Standbys[0].DSN("walprobe"),
				"--interval", "200ms", "--listen", "127.0.0.1:0", "--probe-id", tt.probe,
			}, tt.args...)
			// Short export intervals (the OTel SDK's standard variables) keep
			// the test quick: metrics every 500 ms, span batches every 200 ms.
			wp := startProc(t, "walprobe", bin, []string{"OTEL_METRIC_EXPORT_INTERVAL=500", "OTEL_BSP_SCHEDULE_DELAY=200"}, args...)

			var d *dump
			var res []*dumpResource
			eventually(t, 60*time.Second, "3 complete beat traces and the standby's lag at the collector", func() bool {
				d = parseDump(col.read(t, col.stdout))
				res = d.byInstance(tt.probe)
				return len(completeTrees(res)) >= 3 && len(lagPoints(res, "standby1")) > 0
			}, col, wp)
			// SIGTERM: walprobe flushes its exporters on the way out.
			wp.stop(t)
			if _, err := wp.exited(); err != nil {
				t.Errorf("walprobe exit: %v\n%s", err, tail(wp.output(t), 20))
			}
			// The collector accepted every export, the flush on exit included.
			if failed := failedExports(wp.output(t)); len(failed) > 0 {
				t.Errorf("walprobe reported failed exports:\n%s", strings.Join(failed, "\n"))
			}
			d = parseDump(col.read(t, col.stdout))
			res = d.byInstance(tt.probe)
			checkResources(t, res)
			checkMetrics(t, res)
			checkTraces(t, res, c.Standbys[0].Port)

			for _, out := range []struct{ what, text string }{
				{"collector output", col.output(t)},
				{"walprobe output", wp.output(t)},
			} {
				if strings.Contains(out.text, c.Password) {
					t.Errorf("%s carries the canary password", out.what)
				}
			}
		})
	}
}

// checkResources: every resource walprobe sent names the service, this
// probe and its version, and nothing else identifies it.
func checkResources(t *testing.T, res []*dumpResource) {
	t.Helper()
	signals := map[string]bool{}
	for _, r := range res {
		signals[r.signal] = true
		for k, want := range map[string]string{"service.name": "Str(walprobe)", "telemetry.sdk.language": "Str(go)"} {
			if got := r.attrs[k]; got != want {
				t.Errorf("%s resource %s = %q, want %q", r.signal, k, got, want)
			}
		}
		if typ, v := attrValue(r.attrs["service.version"]); typ != "Str" || v == "" {
			t.Errorf("%s resource service.version = %q, want a non-empty string", r.signal, r.attrs["service.version"])
		}
	}
	if !signals["spans"] || !signals["metrics"] {
		t.Errorf("collector got resources for %v, want both spans and metrics", signals)
	}
}

// lagPoints returns the walprobe.lag values for target.
func lagPoints(res []*dumpResource, target string) []float64 {
	var out []float64
	for _, r := range res {
		for _, m := range r.metrics {
			if m.name != "walprobe.lag" {
				continue
			}
			for _, p := range m.points {
				if p.attrs["target"] == "Str("+target+")" {
					if v, err := strconv.ParseFloat(p.value, 64); err == nil {
						out = append(out, v)
					}
				}
			}
		}
	}
	return out
}

func checkMetrics(t *testing.T, res []*dumpResource) {
	t.Helper()
	type desc struct{ unit, dataType string }
	got := map[string]desc{}
	targets := map[string]map[string]bool{} // metric → target attribute values
	for _, r := range res {
		for _, m := range r.metrics {
			got[m.name] = desc{m.unit, m.dataType}
			for _, p := range m.points {
				if targets[m.name] == nil {
					targets[m.name] = map[string]bool{}
				}
				targets[m.name][p.attrs["target"]+" "+p.attrs["kind"]] = true
			}
		}
	}
	want := map[string]desc{
		"walprobe.lag":                 {"s", "Gauge"},
		"walprobe.visibility.delay":    {"s", "Histogram"},
		"walprobe.beat.write.duration": {"s", "Histogram"},
		"walprobe.beats":               {"", "Sum"},
		"walprobe.target.state":        {"", "Gauge"},
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("metric %s not received; got %v", name, slices.Sorted(maps.Keys(got)))
			continue
		}
		if g != w {
			t.Errorf("metric %s: unit %q type %s, want unit %q type %s", name, g.unit, g.dataType, w.unit, w.dataType)
		}
	}
	for _, name := range []string{"walprobe.lag", "walprobe.visibility.delay"} {
		for _, tk := range []string{"Str(standby1) Str(standby)", "Str(stream) Str(stream)"} {
			if !targets[name][tk] {
				t.Errorf("metric %s has no point with target/kind %s; got %v", name, tk, slices.Sorted(maps.Keys(targets[name])))
			}
		}
	}
	// The standby replays each beat applyDelay after its commit, so the
	// oldest beat it has not shown is always about that old.
	lags := lagPoints(res, "standby1")
	if len(lags) == 0 {
		t.Fatalf("no walprobe.lag point for standby1")
	}
	// The first points come before the first beat shows (lag growing from
	// 0), so the peak, not every point, is about applyDelay.
	peak := slices.Max(lags)
	if lo, hi := 0.5*applyDelay.Seconds(), 5*applyDelay.Seconds(); peak < lo || peak > hi {
		t.Errorf("walprobe.lag for standby1 peaks at %.3fs (points %v), want within [%.1f, %.1f]s of an apply delay of %s", peak, lags, lo, hi, applyDelay)
	}
	t.Logf("walprobe.lag{standby1}: %d points, peak %.3fs", len(lags), peak)
}

// completeTrees returns the beat traces with an ok child for both targets.
func completeTrees(res []*dumpResource) []*beatTree {
	var spans []*dumpSpan
	for _, r := range res {
		spans = append(spans, r.spans...)
	}
	var out []*beatTree
	for _, bt := range beatTrees(spans) {
		if bt.root.status == "Error" {
			continue
		}
		ok := true
		for _, n := range []string{"standby1", "stream"} {
			ok = ok && len(bt.children[n]) == 1 && bt.children[n][0].status != "Error"
		}
		if ok {
			out = append(out, bt)
		}
	}
	return out
}

func checkTraces(t *testing.T, res []*dumpResource, standbyPort int) {
	t.Helper()
	trees := completeTrees(res)
	if len(trees) < 3 {
		t.Fatalf("%d complete beat traces at the collector, want at least 3", len(trees))
	}
	seqs := map[string]bool{}
	var delays []float64
	staged := 0 // stream spans with their stage events
	for _, bt := range trees {
		r := bt.root
		seq := r.attrs["walprobe.beat.seq"]
		if typ, _ := attrValue(seq); typ != "Int" {
			t.Errorf("root span %s: walprobe.beat.seq = %q, want an Int", r.id, seq)
		}
		if seqs[seq] {
			t.Errorf("beat %s has more than one root span", seq)
		}
		seqs[seq] = true
		if n := len(bt.children); n != 2 {
			t.Errorf("beat %s: %d distinct child span names, want 2 (standby1, stream)", seq, n)
		}
		for name, kids := range bt.children {
			k := kids[0]
			if !k.start.Equal(r.start) || k.end.After(r.end) {
				t.Errorf("beat %s child %s [%s, %s] not inside root [%s, %s]", seq, name, k.start, k.end, r.start, r.end)
			}
		}
		sb := bt.children["standby1"][0]
		for k, want := range map[string]string{
			"target": "Str(standby1)", "kind": "Str(standby)", "db.system.name": "Str(postgresql)",
			"server.address": "Str(127.0.0.1)", "server.port": fmt.Sprintf("Int(%d)", standbyPort),
		} {
			if got := sb.attrs[k]; got != want {
				t.Errorf("beat %s standby1 span %s = %q, want %q", seq, k, got, want)
			}
		}
		delay, ok := attrFloat(sb.attrs["walprobe.visibility.delay"])
		if !ok {
			t.Errorf("beat %s standby1 span has no numeric walprobe.visibility.delay: %q", seq, sb.attrs["walprobe.visibility.delay"])
		}
		if _, ok := attrFloat(sb.attrs["walprobe.visibility.error_bound"]); !ok {
			t.Errorf("beat %s standby1 span has no numeric walprobe.visibility.error_bound", seq)
		}
		delays = append(delays, delay)
		// The span runs from sent to visible, so it lasts at least the
		// delay measured from the ack.
		if dur := sb.end.Sub(sb.start).Seconds(); dur < 0.8*applyDelay.Seconds() || dur < delay {
			t.Errorf("beat %s standby1 span lasts %.3fs, want at least %.3fs (its delay) and %.1fs (apply delay)", seq, dur, delay, 0.8*applyDelay.Seconds())
		}
		st := bt.children["stream"][0]
		if got := st.attrs["db.system.name"]; got != "Str(postgresql)" {
			t.Errorf("beat %s stream span db.system.name = %q", seq, got)
		}
		// A beat whose stages the tracer had not got when it ended carries
		// no events; one that has them carries all three, in order.
		switch {
		case slices.Equal(st.events, []string{"commit", "server_sent", "received"}):
			staged++
		case len(st.events) != 0:
			t.Errorf("beat %s stream span events %v, want [commit server_sent received]", seq, st.events)
		}
	}
	if staged == 0 {
		t.Errorf("no complete beat's stream span has the commit, server_sent, received events")
	}
	for _, dl := range delays {
		if dl < 0.8*applyDelay.Seconds() || dl > 3*applyDelay.Seconds() {
			t.Errorf("standby1 visibility delays %v s: want each about the %s apply delay", delays, applyDelay)
			break
		}
	}
	t.Logf("%d complete beat traces (%d with stream stage events); standby1 delays %v s", len(trees), staged, delays)
}

// failedExports returns walprobe's log lines about exports that failed,
// except an export cancelled by shutdown: the SDK's PeriodicReader.Shutdown
// cancels the periodic export in flight (and reports that through the
// global error handler), then collects and exports once more, so nothing
// is lost.
func failedExports(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if (strings.Contains(l, "otlp export failed") || strings.Contains(l, "otlp trace flush")) && !strings.Contains(l, "context canceled") {
			out = append(out, l)
		}
	}
	return out
}
