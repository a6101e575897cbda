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
}
