package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
)

// TestRunServesStateAndMetrics runs the built binary on a real cluster and
// checks its HTTP surface: the documented JSON fields and metric names,
// and that the canary password appears nowhere.
func TestRunServesStateAndMetrics(t *testing.T) {
	c := cluster.StartT(t, cluster.Options{Standbys: 1, Subscriber: true, PgBouncer: true})
	w := startBin(t, nil, "--primary", c.Primary.DSN("walprobe"),
		"--standby", "standby1="+c.Standbys[0].DSN("walprobe"),
		"--subscriber", "sub="+c.Subscriber.DSN("walprobe"),
		"--endpoint", "bouncer="+c.PgBouncer.DSN("walprobe"),
		"--interval", "200ms", "--probe-id", "runtest")
	addr := w.Addr
	get := func(path string) string {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	type target struct {
		Name       string          `json:"name"`
		Kind       string          `json:"kind"`
		State      string          `json:"state"`
		Lag        *float64        `json:"lag_seconds"`
		Delay      *float64        `json:"delay_seconds"`
		ErrorBound *float64        `json:"error_bound_seconds"`
		Classic    json.RawMessage `json:"classic"`
	}
	var state struct {
		Targets []target `json:"targets"`
	}
	// The probe never holds a transaction open: sample every server's
	// walprobe sessions while it runs.
	ctx := context.Background()
	var oldTx []string
	checkTx := func() {
		for _, srv := range c.Servers() {
			v, err := srv.Scalar(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE application_name = 'walprobe' AND xact_start < now() - interval '1 second'`)
			if err == nil && v != "0" {
				oldTx = append(oldTx, srv.Name+":"+v)
			}
		}
	}
	var body string
	fakes.WaitFor(t.Context(), t, 20*time.Second, "every target healthy with a timed beat", func() bool {
		body = get("/v1/state")
		if err := json.Unmarshal([]byte(body), &state); err != nil {
			t.Fatal(err)
		}
		checkTx()
		ok := len(state.Targets) == 4
		for _, tg := range state.Targets {
			ok = ok && tg.State == "healthy" && tg.Lag != nil && tg.Delay != nil && tg.ErrorBound != nil
		}
		return ok
	})
	kinds := map[string]string{}
	for _, tg := range state.Targets {
		kinds[tg.Name] = tg.Kind
	}
	want := map[string]string{"standby1": "standby", "sub": "subscriber", "bouncer": "endpoint", "stream": "stream"}
	for n, k := range want {
		if kinds[n] != k {
			t.Errorf("target %s kind %q, want %q", n, kinds[n], k)
		}
	}
	if !strings.Contains(body, `"replay_timestamp_age_seconds"`) || !strings.Contains(body, `"exporter_lag_seconds"`) {
		t.Errorf("/v1/state lacks classic numbers:\n%s", body)
	}
	names := []string{
		`walprobe_lag_seconds{kind="standby",target="standby1"}`,
		`walprobe_visibility_delay_seconds_bucket{kind="endpoint",target="bouncer"`,
		`walprobe_visibility_error_bound_seconds{kind="subscriber",target="sub"}`,
		`walprobe_target_state{kind="standby",state="healthy",target="standby1"} 1`,
		`walprobe_classic_replay_timestamp_age_seconds{`,
		`walprobe_classic_exporter_lag_seconds{`,
		`walprobe_classic_receive_replay_gap_bytes{`,
		`walprobe_classic_subscription_age_seconds{`,
		`walprobe_stream_delay_seconds_bucket{`,
		`walprobe_lsn_lag_seconds{`,
		`walprobe_beats_total`,
	}
	var metrics string
	missing := func() []string {
		var out []string
		for _, name := range names {
			if !strings.Contains(metrics, name) {
				out = append(out, name)
			}
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for metrics = get("/metrics"); len(missing()) > 0 && time.Now().Before(deadline); metrics = get("/metrics") {
		time.Sleep(200 * time.Millisecond)
	}
	for _, name := range missing() {
		t.Errorf("/metrics lacks %s", name)
	}
	// Every series the Grafana dashboard queries exists in a real scrape,
	// unless docs/metrics.md says it exists only during an outage.
	docs, _ := readMetricsDoc(t)
	dash, err := os.ReadFile("../../deploy/grafana/walprobe.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"(?:expr|query)":\s*"((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(string(dash), -1) {
		for _, name := range regexp.MustCompile(`walprobe_[a-z_]+`).FindAllString(m[1], -1) {
			if docs[name].conditional {
				continue // documented as shown only in an outage
			}
			if !strings.Contains(metrics, "\n"+name+"{") && !strings.Contains(metrics, "\n"+name+" ") {
				t.Errorf("dashboard queries %s (in %q), which /metrics does not expose", name, m[1])
			}
		}
	}
	for range 10 {
		checkTx()
		time.Sleep(100 * time.Millisecond)
	}
	if len(oldTx) > 0 {
		t.Errorf("walprobe transactions older than 1 s seen: %v", oldTx)
	}
	if got := get("/healthz"); strings.TrimSpace(got) != "ok" {
		t.Errorf("/healthz = %q", got)
	}
	if _, err := w.terminate(t, 10*time.Second); err != nil {
		t.Errorf("walprobe exited with %v after SIGTERM, want 0", err)
	}
	all := w.Logs()
	for what, text := range map[string]string{"logs": all, "/v1/state": body, "/metrics": metrics} {
		if strings.Contains(text, c.Password) {
			t.Errorf("%s carry the canary password", what)
		}
	}
	fakes.WaitFor(t.Context(), t, 5*time.Second, "no walprobe slot after a clean shutdown", func() bool {
		n, _ := c.Primary.Scalar(ctx, "SELECT count(*) FROM pg_replication_slots WHERE temporary AND slot_name LIKE 'walprobe%'")
		return n == "0"
	})
}
