package receivers

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/launch"
)

// startPrometheus runs Prometheus 3 with its OTLP receiver on a free
// 127.0.0.1 port, a throwaway TSDB and a config with no scrape jobs: every
// sample it holds came in over OTLP. It returns the process and the base
// URL.
func startPrometheus(t *testing.T) (*proc, string) {
	t.Helper()
	bin := receiverBin(t, "WALPROBE_PROMETHEUS", "prometheus")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePorts(t, 1)[0]))
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte("global:\n  evaluation_interval: 15s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "prometheus", bin, nil,
		"--config.file="+conf,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.enable-otlp-receiver",
	)
	base := "http://" + addr
	eventually(t, 60*time.Second, "prometheus ready", func() bool {
		_, err := get(t.Context(), base+"/-/ready")
		return err == nil
	}, p)
	return p, base
}

// promSample is one series of an instant query.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix seconds, "value"]
}

func (s promSample) value() (float64, bool) {
	v, ok := s.Value[1].(string)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}

// promQuery runs an instant query through /api/v1/query.
func promQuery(ctx context.Context, base, q string) ([]promSample, error) {
	b, err := get(ctx, base+"/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return nil, fmt.Errorf("query %s: %w: %s", q, err, b)
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	if r.Status != "success" || r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: status %q, result type %q", q, r.Status, r.Data.ResultType)
	}
	return r.Data.Result, nil
}

// TestPrometheusOTLP exports walprobe's metrics over OTLP/HTTP to
// Prometheus 3's OTLP receiver (set only through the standard
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) and queries Prometheus's HTTP API
// until the lag series of a standby delayed by applyDelay appears with a
// value near that delay; then checks its labels, the translated resource
// (job, instance, target_info) and that no series carries the canary
// password.
func TestPrometheusOTLP(t *testing.T) {
	prom, base := startPrometheus(t)
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	if err := c.SetApplyDelay(t.Context(), c.Standbys[0], applyDelay); err != nil {
		t.Fatal(err)
	}
	const probeID = "prom-otlp"
	wp := startProc(t, "walprobe", launch.Binary(t), []string{
		// Metrics only: Prometheus has no trace receiver, and a signal
		// endpoint is used as given (no /v1/metrics appended).
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=" + base + "/api/v1/otlp/v1/metrics",
		"OTEL_METRIC_EXPORT_INTERVAL=500",
	}, "run",
		"--primary", c.Primary.DSN("walprobe"),
		"--standby", "standby1="+c.Standbys[0].DSN("walprobe"),
		"--interval", "200ms", "--listen", "127.0.0.1:0", "--probe-id", probeID)

	ctx := t.Context()
	const q = `walprobe_lag_seconds{target="standby1"}`
	var got []promSample
	var lag float64
	start := time.Now()
	eventually(t, 60*time.Second, "a plausible "+q+" in prometheus", func() bool {
		var err error
		if got, err = promQuery(ctx, base, q); err != nil {
			t.Log(err)
			return false
		}
		if len(got) != 1 {
			return false
		}
		v, ok := got[0].value()
		lag = v
		// The standby replays each beat applyDelay after its commit; the
		// first samples, before its first beat shows, may be lower.
		return ok && v >= 0.5*applyDelay.Seconds() && v <= 5*applyDelay.Seconds()
	}, prom, wp)
	t.Logf("%s = %.3fs in prometheus %s after walprobe started", q, lag, time.Since(start).Round(time.Millisecond))

	want := map[string]string{
		"__name__": "walprobe_lag_seconds",
		"target":   "standby1",
		"kind":     "standby",
		// OTLP → Prometheus: service.name becomes job, service.instance.id
		// instance.
		"job":      "walprobe",
		"instance": probeID,
	}
	for k, w := range want {
		if g := got[0].Metric[k]; g != w {
			t.Errorf("%s label %s = %q, want %q (labels %v)", q, k, g, w, got[0].Metric)
		}
	}
	for k := range got[0].Metric {
		if _, ok := want[k]; !ok {
			t.Errorf("%s has unexpected label %s=%q", q, k, got[0].Metric[k])
		}
	}

	// The other resource attributes land on target_info, joined by job and
	// instance.
	info, err := promQuery(ctx, base, fmt.Sprintf(`target_info{job="walprobe",instance=%q}`, probeID))
	if err != nil {
		t.Fatal(err)
	}
	if len(info) != 1 {
		t.Fatalf("target_info for %s: %d series, want 1: %v", probeID, len(info), info)
	}
	if g := info[0].Metric["telemetry_sdk_language"]; g != "go" {
		t.Errorf("target_info telemetry_sdk_language = %q, want go (labels %v)", g, info[0].Metric)
	}
	if g := info[0].Metric["service_version"]; g == "" {
		t.Errorf("target_info has no service_version (labels %v)", info[0].Metric)
	}

	// Every series walprobe sent, all of it, carries no secret.
	all, err := promQuery(ctx, base, fmt.Sprintf(`{instance=%q}`, probeID))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range all {
		names[s.Metric["__name__"]] = true
		for k, v := range s.Metric {
			if strings.Contains(k, c.Password) || strings.Contains(v, c.Password) {
				t.Errorf("series %v carries the canary password", s.Metric["__name__"])
			}
		}
	}
	for _, n := range []string{"walprobe_lag_seconds", "walprobe_visibility_delay_seconds_bucket", "walprobe_beats_total", "walprobe_target_state"} {
		if !names[n] {
			t.Errorf("prometheus has no %s series for %s", n, probeID)
		}
	}
	t.Logf("%d series from %s in prometheus", len(all), probeID)
	wp.stop(t)
	if _, err := wp.exited(); err != nil {
		t.Errorf("walprobe exit: %v\n%s", err, tail(wp.output(t), 20))
	}
	// Prometheus took every export (it answers 400 to samples it cannot
	// translate, which the SDK reports as a failed export).
	if failed := failedExports(wp.output(t)); len(failed) > 0 {
		t.Errorf("walprobe reported failed exports:\n%s", strings.Join(failed, "\n"))
	}
	for _, p := range []*proc{wp, prom} {
		if strings.Contains(p.output(t), c.Password) {
			t.Errorf("%s output carries the canary password", p.name)
		}
	}
}
