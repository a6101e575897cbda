package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
)

// TestWaitDelayedStandby runs walprobe wait against a standby that
// replays 3 s late, connecting itself and through a running walprobe
// (--from): --max-lag 5s is reached (exit 0), --max-lag 1s is not within
// --timeout 4s (exit 1); bad input exits 2.
func TestWaitDelayedStandby(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	sb := c.Standbys[0]
	if err := c.SetApplyDelay(ctx, sb, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	servers := []string{"--primary", c.Primary.DSN("walprobe"), "--standby", "standby1=" + sb.DSN("walprobe"), "--interval", "200ms"}
	w := runProbeBinary(t, append(servers, "--probe-id", "waitfrom", "--no-stream")...)
	from := "http://" + w.Addr
	tests := []struct {
		name     string
		give     []string
		wantCode int
		wantOut  string
	}{
		{"reached", append([]string{"wait", "--max-lag", "5s", "--timeout", "20s"}, servers...), 0, "reached after"},
		{"timeout", append([]string{"wait", "--max-lag", "1s", "--timeout", "4s"}, servers...), 1, "not reached within 4s: standby1 lag"},
		{"from reached", []string{"wait", "--from", from, "--max-lag", "5s", "--timeout", "20s"}, 0, "reached after"},
		{"from timeout", []string{"wait", "--from", from, "--max-lag", "1s", "--timeout", "4s", "--target", "standby1"}, 1, "not reached within 4s"},
		{"from unknown target", []string{"wait", "--from", from, "--max-lag", "1s", "--target", "nosuch"}, 2, `no target named "nosuch"`},
		{"unknown target", append([]string{"wait", "--max-lag", "1s", "--target", "nosuch"}, servers...), 2, "--target nosuch: no such target"},
		{"no max-lag", append([]string{"wait"}, servers...), 2, "--max-lag"},
		{"nothing to ask", []string{"wait", "--max-lag", "1s"}, 2, "--primary is required"},
		{"bad kind", []string{"wait", "--from", from, "--max-lag", "1s", "--kind", "replica"}, 2, "--kind must be one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out, code := runBinary(t, tt.give...)
			t.Logf("exit %d after %v:\n%s", code, time.Since(start).Round(time.Millisecond), tail(out))
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Errorf("exit %d, want %d with %q", code, tt.wantCode, tt.wantOut)
			}
			if strings.Contains(out, c.Password) {
				t.Error("output carries the canary password")
			}
		})
	}
}
