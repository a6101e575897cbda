package e2e

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/inproc"
	"github.com/walprobe/walprobe/test/launch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.Cleanup(launch.Cleanup)) }

// running is a probe with a writer and readers on a cluster, in process
// (test/inproc).
type running struct {
	*inproc.Running
	p       *probe.Probe
	w       *heartbeat.Writer
	readers map[string]*probe.Reader
	rec     *inproc.Recorder
}

// targetDSN is a target for startProbe.
type targetDSN = inproc.Target

// startProbe runs a writer and one reader per target until the test ends.
func startProbe(ctx context.Context, t *testing.T, primaryDSN, probeID string, interval time.Duration, targets ...inproc.Target) *running {
	t.Helper()
	r := inproc.Start(ctx, t, inproc.Config{Primary: primaryDSN, ProbeID: probeID, Interval: interval, Targets: targets})
	return &running{Running: r, p: r.Probe, w: r.Writer, readers: r.Readers, rec: r.Recorder}
}

func (r *running) target(t *testing.T, name string) probe.TargetSnapshot {
	t.Helper()
	for _, ts := range r.p.Snapshot().Targets {
		if ts.Name == name {
			return ts
		}
	}
	t.Fatalf("no target %q", name)
	return probe.TargetSnapshot{}
}

// waitFor is fakes.WaitFor with the test's context.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	fakes.WaitFor(t.Context(), t, d, what, cond)
}

// secs is *d in seconds, -1 when unknown.
func secs(d *time.Duration) float64 {
	if d == nil {
		return -1
	}
	return d.Seconds()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
