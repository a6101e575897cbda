package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
)

// TestWebhookLagAlert runs the binary with a webhook receiver: cutting the
// standby off fires a signed lag_warning alert; restoring it resolves it.
func TestWebhookLagAlert(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	const secret = "whsecret"
	hook := fakes.NewWebhook(t, fakes.WithSecret(secret))
	startBin(t, []string{"WALPROBE_WEBHOOK_SECRET=" + secret}, "--primary", c.Primary.DSN("walprobe"),
		"--standby", "standby1="+c.Standbys[0].DSN("walprobe"), "--no-stream",
		"--interval", "200ms", "--probe-id", "alerts",
		"--webhook-url", hook.URL+"/hook/token123", "--alert-lag-warning", "2s", "--alert-lag-critical", "0")
	time.Sleep(2 * time.Second)
	if err := c.CutReceiver(ctx, c.Standbys[0]); err != nil {
		t.Fatal(err)
	}
	find := func(status string) bool { return hook.Count("lag_warning", "standby1", status) > 0 }
	fakes.WaitFor(t.Context(), t, 25*time.Second, "a firing lag_warning webhook", func() bool { return find("firing") })
	if err := c.RestoreReceiver(ctx, c.Standbys[0]); err != nil {
		t.Fatal(err)
	}
	fakes.WaitFor(t.Context(), t, 25*time.Second, "a resolved lag_warning webhook", func() bool { return find("resolved") })

	// A primary outage: one primary_unreachable alert, and no lag alert
	// for the caught-up standby (its lag is unknown, not growing).
	before := len(hook.Payloads())
	if err := c.Primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	count := func(name, status string) int {
		n := 0
		for _, p := range hook.Payloads()[before:] {
			if p["alert"] == name && p["status"] == status {
				n++
			}
		}
		return n
	}
	fakes.WaitFor(t.Context(), t, 10*time.Second, "a firing primary_unreachable webhook", func() bool { return count("primary_unreachable", "firing") == 1 })
	time.Sleep(4 * time.Second) // past --alert-lag-warning 2s
	if n := count("lag_warning", "firing"); n != 0 {
		t.Errorf("%d lag_warning alerts fired during a primary outage, want 0 (the caught-up standby's lag is unknown)", n)
	}
	if err := c.Primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	fakes.WaitFor(t.Context(), t, 25*time.Second, "a resolved primary_unreachable webhook", func() bool { return count("primary_unreachable", "resolved") == 1 })
	if n := count("primary_unreachable", "firing"); n != 1 {
		t.Errorf("primary_unreachable fired %d times, want once", n)
	}
}
