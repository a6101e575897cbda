package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
)

// TestStreamSlotLostWebhook runs the binary with its logical stream and a
// real webhook receiver. Terminating the walsender (the server then drops
// the stream's TEMPORARY slot) fires stream_slot_lost once; the stream
// making a new slot resolves it. A second loss is a second alert.
func TestStreamSlotLostWebhook(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{})
	const secret = "slot-secret"
	hook := fakes.NewWebhook(t, fakes.WithSecret(secret))
	p := startBin(t, []string{"WALPROBE_WEBHOOK_SECRET=" + secret},
		"--primary", c.Primary.DSN("walprobe"),
		"--interval", "200ms", "--listen", "127.0.0.1:0", "--probe-id", "slotlost",
		"--webhook-url", hook.URL+"/hook/token", "--alert-lag-warning", "0", "--alert-lag-critical", "0")

	const slotQuery = "SELECT coalesce(string_agg(slot_name || ':' || active_pid, ','), '') FROM pg_replication_slots WHERE temporary AND slot_name LIKE 'walprobe%' AND active"
	slot := func() string {
		v, err := c.Primary.Scalar(ctx, slotQuery)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	fakes.WaitFor(t.Context(), t, 20*time.Second, "the stream healthy on a slot", func() bool {
		return p.stateOf(t, "stream") == "healthy" && slot() != ""
	})
	for round := 1; round <= 2; round++ {
		before := slot()
		pid := before[strings.LastIndex(before, ":")+1:]
		killed := time.Now()
		if err := c.Primary.Exec(ctx, "SELECT pg_terminate_backend("+pid+")"); err != nil {
			t.Fatal(err)
		}
		fakes.WaitFor(t.Context(), t, 10*time.Second, "stream_slot_lost firing", func() bool {
			return hook.Count("stream_slot_lost", "stream", "firing") == round
		})
		t.Logf("round %d: stream_slot_lost fired %s after pg_terminate_backend", round, time.Since(killed).Round(time.Millisecond))
		fakes.WaitFor(t.Context(), t, 20*time.Second, "stream_slot_lost resolved", func() bool {
			return hook.Count("stream_slot_lost", "stream", "resolved") == round
		})
		after := slot()
		t.Logf("round %d: resolved %s after pg_terminate_backend; slot %s → %s", round, time.Since(killed).Round(time.Millisecond), before, after)
		if after == "" || after == before {
			t.Errorf("round %d: after the resolve the stream's slot is %q (was %q), want a new walsender", round, after, before)
		}
		fakes.WaitFor(t.Context(), t, 10*time.Second, "the stream healthy again", func() bool { return p.stateOf(t, "stream") == "healthy" })
		// Healthy for a while: no second notification for the same loss.
		time.Sleep(time.Second)
		if f, r := hook.Count("stream_slot_lost", "stream", "firing"), hook.Count("stream_slot_lost", "stream", "resolved"); f != round || r != round {
			t.Errorf("round %d: stream_slot_lost firing %d, resolved %d times; want %d each", round, f, r, round)
		}
	}
	for _, pl := range hook.ForTarget("stream") {
		if pl["alert"] == "stream_slot_lost" && pl["status"] == "firing" {
			if s, _ := pl["summary"].(string); !strings.Contains(s, "slot") {
				t.Errorf("firing summary %q does not say what happened", s)
			}
			t.Logf("payload: %v", pl)
		}
	}
	if strings.Contains(hook.Bodies(), c.Password) || strings.Contains(p.Logs(), c.Password) {
		t.Error("webhook bodies or logs carry the canary password")
	}
	if d, err := p.terminate(t, 10*time.Second); err != nil {
		t.Errorf("walprobe exited with %v after SIGTERM (%s), want status 0", err, d)
	}
	fakes.WaitFor(t.Context(), t, 5*time.Second, "no walprobe slot after shutdown", func() bool {
		n, _ := c.Primary.Scalar(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'walprobe%'")
		return n == "0"
	})
}
