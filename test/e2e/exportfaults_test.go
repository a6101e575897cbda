package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
)

// TestBlackholedExportersDoNotBlock runs the binary with its OTLP metrics,
// OTLP traces and webhook all pointed at listeners that accept and never
// answer (both OTLP protocols, each signal on each), or at addresses where
// connects never complete (like a non-routable address), and a dead endpoint
// target so a target_down alert is queued at once. Beats keep their
// cadence, the standby and the stream keep timing every beat, and SIGTERM
// still exits 0 within the documented bound (--flush-timeout 2s + 1s)
// leaving no slot behind.
func TestBlackholedExportersDoNotBlock(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	const interval = 250 * time.Millisecond
	for _, tc := range []struct {
		name, metrics, traces string
		flush                 time.Duration // --flush-timeout; 0: the default, 2s
		syn                   bool          // connects never complete (SYNs dropped)
	}{
		{"metrics_grpc_traces_http", "grpc", "http/protobuf", 0, false},
		{"metrics_http_traces_grpc", "http/protobuf", "grpc", time.Second, false},
		{"syn_dropped_metrics_grpc_traces_http", "grpc", "http/protobuf", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mbh, tbh, hbh := newBlackhole(t), newBlackhole(t), newBlackhole(t)
			maddr, taddr, haddr := mbh.addr(), tbh.addr(), hbh.addr()
			connected := func() bool {
				return mbh.accepted.Load() > 0 && tbh.accepted.Load() > 0 && hbh.accepted.Load() > 0
			}
			if tc.syn {
				// Nothing to count on the server side: the logs below show
				// every exporter stuck instead.
				maddr, taddr, haddr = newSynBlackhole(t).addr, newSynBlackhole(t).addr, newSynBlackhole(t).addr
				connected = func() bool { return true }
			}
			flush := 2 * time.Second
			var flushEnv []string
			if tc.flush > 0 {
				flush = tc.flush
				flushEnv = []string{"WALPROBE_FLUSH_TIMEOUT=" + tc.flush.String()}
			}
			p := startBin(t, append(flushEnv,
				"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=http://"+maddr+"/v1/metrics",
				"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="+tc.metrics,
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://"+taddr+"/v1/traces",
				"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="+tc.traces,
				// Export early and often so the exporters are stuck on the
				// blackholes for the whole run; export timeouts stay at
				// their defaults (10 s and more).
				"OTEL_METRIC_EXPORT_INTERVAL=500", "OTEL_BSP_SCHEDULE_DELAY=200",
			),
				"--primary", c.Primary.DSN("walprobe"),
				"--standby", "standby1="+c.Standbys[0].DSN("walprobe"),
				// Refused at once: target_down is queued for the webhook.
				"--endpoint", "dead=postgres://walprobe@127.0.0.1:1/postgres?connect_timeout=1",
				"--interval", interval.String(), "--listen", "127.0.0.1:0", "--probe-id", "blackhole-"+tc.name[:8],
				"--json", "--webhook-url", "http://"+haddr+"/hook/token")

			fakes.WaitFor(t.Context(), t, 15*time.Second, "every exporter connected to its blackhole", connected)
			fakes.WaitFor(t.Context(), t, 15*time.Second, "standby1 and the stream healthy", func() bool {
				return p.stateOf(t, "standby1") == "healthy" && p.stateOf(t, "stream") == "healthy"
			})
			const window = 8 * time.Second
			from := time.Now()
			time.Sleep(window)
			to := time.Now()
			time.Sleep(time.Second) // let the last beats of the window show

			beats, err := beatLines(p.Stdout())
			if err != nil {
				t.Fatal(err)
			}
			sent := map[int64]time.Time{}
			shown := map[string]map[int64]float64{"standby1": {}, "stream": {}}
			for _, b := range beats {
				if b.Sent.Before(from) || b.Sent.After(to) {
					continue
				}
				sent[b.Seq] = b.Sent
				if m, ok := shown[b.Target]; ok {
					m[b.Seq] = b.Delay
				}
			}
			seqs := make([]int64, 0, len(sent))
			for s := range sent {
				seqs = append(seqs, s)
			}
			slices.Sort(seqs)
			want := int(window / interval)
			var gaps []time.Duration
			for i := 1; i < len(seqs); i++ {
				if seqs[i] != seqs[i-1]+1 {
					t.Errorf("beats %d..%d never shown on any target", seqs[i-1]+1, seqs[i]-1)
				}
				gaps = append(gaps, sent[seqs[i]].Sub(sent[seqs[i-1]]))
			}
			slices.Sort(gaps)
			if len(seqs) < want-2 || len(gaps) == 0 {
				t.Fatalf("%d beats sent in %s, want about %d (one per %s)", len(seqs), window, want, interval)
			}
			maxGap, medGap := gaps[len(gaps)-1], gaps[len(gaps)/2]
			t.Logf("%d beats in %s (want %d); inter-beat gap median %s, max %s; blackholes accepted metrics %d, traces %d, webhook %d connections",
				len(seqs), window, want, medGap.Round(time.Millisecond), maxGap.Round(time.Millisecond),
				mbh.accepted.Load(), tbh.accepted.Load(), hbh.accepted.Load())
			if maxGap > interval+200*time.Millisecond {
				t.Errorf("largest gap between beats %s, want <= %s", maxGap, interval+200*time.Millisecond)
			}
			for target, m := range shown {
				var worst float64
				missing := 0
				for _, s := range seqs {
					d, ok := m[s]
					if !ok {
						missing++
						continue
					}
					worst = max(worst, d)
				}
				t.Logf("%s timed %d of %d beats, worst delay %.1f ms", target, len(seqs)-missing, len(seqs), worst*1000)
				if missing > 0 {
					t.Errorf("%s did not time %d of the %d beats", target, missing, len(seqs))
				}
				if worst > 0.5 {
					t.Errorf("%s worst delay %.3f s, want < 0.5 s on loopback", target, worst)
				}
			}
			if st := p.stateOf(t, "dead"); st != "down" {
				t.Errorf("dead endpoint state %q, want down", st)
			}

			took, err := p.terminate(t, 15*time.Second)
			t.Logf("exit %s after SIGTERM with every exporter blackholed (--flush-timeout %s)", took.Round(time.Millisecond), flush)
			if err != nil {
				t.Errorf("walprobe exited with %v after SIGTERM, want status 0", err)
			}
			// Documented: --flush-timeout + 1 s; one more second of slack
			// for a loaded machine.
			if limit := flush + 2*time.Second; took > limit {
				t.Errorf("exit took %s after SIGTERM, want <= %s (--flush-timeout %s + 1s, plus slack)", took, limit, flush)
			}
			fakes.WaitFor(t.Context(), t, 5*time.Second, "no walprobe slot after shutdown", func() bool {
				n, _ := c.Primary.Scalar(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'walprobe%'")
				return n == "0"
			})
			logs := p.Logs()
			if strings.Contains(logs, c.Password) || strings.Contains(strings.Join(p.Stdout(), "\n"), c.Password) {
				t.Error("logs or --json output carry the canary password")
			}
			if strings.Contains(logs, "hook/token") {
				t.Error("logs carry the webhook URL's path")
			}
			// Every sink was stuck on its blackhole when the flush ran out.
			for _, want := range []string{"otlp metric flush", "otlp trace flush", `msg="alert not delivered"`} {
				if !strings.Contains(logs, want) {
					t.Errorf("logs lack %q: that sink was not stuck on its blackhole", want)
				}
			}
			if testing.Verbose() {
				t.Logf("walprobe logs:\n%s", logs)
			}
		})
	}
}

// jsonBeat is one --json line.
type jsonBeat struct {
	Target string    `json:"target"`
	Seq    int64     `json:"seq"`
	Sent   time.Time `json:"sent"`
	Delay  float64   `json:"delay_seconds"`
}

func beatLines(lines []string) ([]jsonBeat, error) {
	out := make([]jsonBeat, 0, len(lines))
	for i, l := range lines {
		var b jsonBeat
		if err := json.Unmarshal([]byte(l), &b); err != nil {
			return nil, fmt.Errorf("--json line %d %q: %w", i+1, l, err)
		}
		out = append(out, b)
	}
	return out, nil
}
