package metrics_test

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/metrics"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.prom from what /metrics serves")

// The Prometheus text /metrics serves for a probe state built through the
// public API, compared family by family with testdata/metrics.golden.prom
// (postgres_exporter style). Every value is fixed by the beats and
// brackets below and the probe's fixed clock: each target shows every
// beat, so each lag is 0. Rewrite with `go test ./sink/metrics -update`.
func TestPrometheusGolden(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	// The probe reads a fixed clock 2.2 s after t0: just after the last
	// beat, so no lag depends on when the test runs.
	p := probe.NewForTest(probe.Config{ProbeID: "golden", Interval: time.Second}, slog.New(slog.DiscardHandler), func() time.Time { return t0.Add(2200 * time.Millisecond) })
	reader, handler, err := metrics.Prometheus()
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(t.Context()) })
	if _, err := metrics.New(p, mp); err != nil {
		t.Fatal(err)
	}
	standby, err := p.Register("replica1", probe.KindStandby)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := p.Register("reporting", probe.KindSubscriber)
	if err != nil {
		t.Fatal(err)
	}

	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	beat := func(seq int64, sent, acked int) {
		p.Beat(heartbeat.Beat{Seq: seq, Sent: at(sent), Acked: at(acked)})
	}
	for _, tg := range []*probe.Target{standby, sub} {
		tg.Connected()
	}
	beat(1, 0, 2)
	standby.Seen(1, at(3), at(3)) // places the targets
	sub.Seen(1, at(3), at(3))
	p.Missed(at(500), errors.New("primary unreachable"))
	beat(2, 1000, 1002)
	standby.Seen(2, at(1000), at(1006)) // 1003 ± 3 ms: delay 1 ms
	beat(3, 2000, 2004)
	standby.Seen(3, at(2000), at(2020)) // 2010 ± 10 ms: delay 6 ms
	sub.Seen(3, at(1500), at(2104))     // beat 2: 1802 ± 302 ms; beat 3, clipped to Sent: 2052 ± 52 ms
	ok, recv := true, "streaming"
	age, zero, gap := 250*time.Millisecond, time.Duration(0), int64(4096)
	standby.SetClassic(probe.Classic{At: at(2100), InRecovery: &ok, ReplayTimestampAge: &age, ExporterLag: &zero, ReceiveReplayGapBytes: &gap, ReceiverStatus: &recv})
	workers, rcpt := int64(1), 500*time.Millisecond
	sub.SetClassic(probe.Classic{At: at(2100), SubscriptionReceiptAge: &rcpt, SubscriptionWorkers: &workers})

	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	golden := filepath.Join("testdata", "metrics.golden.prom")
	if *update {
		if err := os.WriteFile(golden, scrapeWalprobe(t, srv.URL), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with go test ./sink/metrics -run Golden -update)", err)
	}
	if err := testutil.ScrapeAndCompare(srv.URL, bytes.NewReader(want), families(want)...); err != nil {
		t.Fatalf("/metrics differs from %s (rewrite with -update if the change is meant):\n%v", golden, err)
	}
}

// scrapeWalprobe returns the walprobe_* families of one scrape, leaving
// out the Go runtime and process collectors, whose values change per run.
func scrapeWalprobe(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		if strings.HasPrefix(name, "walprobe_") {
			out.WriteString(line + "\n")
		}
	}
	return out.Bytes()
}

// families lists the metric families a golden file holds.
func families(golden []byte) []string {
	var names []string
	for line := range strings.Lines(string(golden)) {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names = append(names, strings.Fields(rest)[0])
		}
	}
	return names
}
