package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
)

// TestSLOPerTargetObjectives runs the binary with two standbys that both
// replay every commit 1 s late, under different objectives given with
// --slo: "strict" wants 95 % of beats within 500 ms and so misses every
// beat, "loose" wants them within 3 s and meets it. Only strict fires the
// fast-burn alert; it resolves once the delay is removed. The SLO series
// carry each objective's labels.
func TestSLOPerTargetObjectives(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 2})
	for _, s := range c.Standbys {
		if err := c.SetApplyDelay(ctx, s, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	const secret = "slo-secret"
	hook := fakes.NewWebhook(t, fakes.WithSecret(secret))
	p := startBin(t, []string{"WALPROBE_WEBHOOK_SECRET=" + secret},
		"--primary", c.Primary.DSN("walprobe"),
		"--standby", "strict="+c.Standbys[0].DSN("walprobe"),
		"--standby", "loose="+c.Standbys[1].DSN("walprobe"),
		"--no-stream", "--interval", "250ms", "--listen", "127.0.0.1:0", "--probe-id", "slo-e2e",
		// Budget 5 %: the 14.4x fast burn needs >= 72 % bad beats in both
		// its 1h and 5m windows, and clears soon after recovery.
		"--slo", "strict=0.95@500ms", "--slo", "loose=95%@3s/7d", "--slo-eval-interval", "1s",
		"--webhook-url", hook.URL+"/hook/token", "--alert-lag-warning", "0", "--alert-lag-critical", "0")

	start := time.Now()
	fakes.WaitFor(t.Context(), t, 30*time.Second, "slo_fast_burn_1h firing for strict", func() bool {
		return hook.Count("slo_fast_burn_1h", "strict", "firing") > 0
	})
	fired := time.Since(start)
	t.Logf("slo_fast_burn_1h fired for strict %s after start", fired.Round(time.Millisecond))

	// Give loose time to misbehave before looking at the metrics.
	time.Sleep(3 * time.Second)
	metrics := p.get(t, "/metrics")
	for _, tc := range []struct{ target, labels string }{
		{"strict", `compliance_window="28d",kind="standby",objective="0.95",target="strict",threshold="500ms"`},
		{"loose", `compliance_window="7d",kind="standby",objective="0.95",target="loose",threshold="3s"`},
	} {
		for _, name := range []string{"walprobe_slo_events_total", "walprobe_slo_good_events_total", "walprobe_slo_error_budget_remaining_ratio"} {
			if !regexp.MustCompile(`(?m)^` + name + `\{` + regexp.QuoteMeta(tc.labels) + `[,}]`).MatchString(metrics) {
				t.Errorf("/metrics lacks %s{%s}", name, tc.labels)
			}
		}
		for _, w := range []string{"5m", "1h"} {
			if !regexp.MustCompile(`(?m)^walprobe_slo_burn_rate\{` + regexp.QuoteMeta(tc.labels) + `.*window="` + w + `"`).MatchString(metrics) {
				t.Errorf("/metrics lacks walprobe_slo_burn_rate{%s,window=%q}", tc.labels, w)
			}
		}
	}
	burn := func(target string) string {
		m := regexp.MustCompile(`(?m)^walprobe_slo_burn_rate\{[^}]*target="` + target + `"[^}]*window="5m"[^}]*\} (\S+)`).FindStringSubmatch(metrics)
		if m == nil {
			return "?"
		}
		return m[1]
	}
	t.Logf("5m burn rate: strict %s, loose %s", burn("strict"), burn("loose"))
	if b := burn("loose"); b != "0" {
		t.Errorf("loose 5m burn rate = %s, want 0 (every beat within 3 s)", b)
	}
	if b := burn("strict"); b == "0" || b == "?" {
		t.Errorf("strict 5m burn rate = %s, want > 14.4", b)
	}

	if err := c.SetApplyDelay(ctx, c.Standbys[0], 0); err != nil {
		t.Fatal(err)
	}
	recovered := time.Now()
	fakes.WaitFor(t.Context(), t, 90*time.Second, "slo_fast_burn_1h resolved for strict", func() bool {
		return hook.Count("slo_fast_burn_1h", "strict", "resolved") > 0
	})
	t.Logf("slo_fast_burn_1h resolved %s after the apply delay was removed", time.Since(recovered).Round(time.Millisecond))

	if n := hook.Count("slo_fast_burn_1h", "strict", "firing"); n != 1 {
		t.Errorf("slo_fast_burn_1h fired %d times for strict, want once", n)
	}
	if got := hook.ForTarget("loose"); len(got) > 0 {
		t.Errorf("loose (objective met) alerted: %v", got)
	}
	for what, text := range map[string]string{"logs": p.Logs(), "/metrics": metrics, "webhook bodies": hook.Bodies()} {
		if strings.Contains(text, c.Password) {
			t.Errorf("%s carry the canary password", what)
		}
	}
	if d, err := p.terminate(t, 10*time.Second); err != nil {
		t.Errorf("walprobe exited with %v after SIGTERM (%s), want status 0", err, d)
	}
}
