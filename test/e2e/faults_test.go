package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/inproc"
)

// TestFaultsAreStates stops the primary and then a standby: the probe
// keeps running, beats are counted as missed, lag keeps growing (never a
// silent 0), and everything comes back when the servers do.
func TestFaultsAreStates(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	r := startProbe(ctx, t, c.Primary.DSN("walprobe"), "faults", 200*time.Millisecond,
		inproc.Target{Name: "standby1", Kind: probe.KindStandby, DSN: c.Standbys[0].DSN("walprobe")})
	fakes.WaitFor(t.Context(), t, 15*time.Second, "beats timed on standby1", func() bool { return len(r.rec.VisibleOn("standby1")) >= 3 })

	t.Run("primary_down", func(t *testing.T) {
		if err := c.Primary.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		// standby1 had shown every beat: its lag is unknown (null, never a
		// number that looks measured) and its upper bound keeps pace with
		// the outage.
		var minBound = 1e9
		for time.Since(stopped) < 5*time.Second {
			time.Sleep(250 * time.Millisecond)
			s := r.target(t, "standby1")
			if s.Lag != nil && time.Since(stopped) > 2*time.Second {
				t.Errorf("standby1 lag %.2fs %v into a primary outage, want null (unknown)", s.Lag.Seconds(), time.Since(stopped).Round(time.Millisecond))
			}
			if s.LagUpperBound != nil && time.Since(stopped) > 2*time.Second {
				minBound = min(minBound, s.LagUpperBound.Seconds()-time.Since(stopped).Seconds())
			}
		}
		snap := r.p.Snapshot()
		s := r.target(t, "standby1")
		t.Logf("primary down 5 s: standby1 state %s, lag upper bound %.2fs, beats missed %d, primary up %v", s.State, secs(s.LagUpperBound), snap.BeatsMissed, snap.Primary.Up)
		if s.State != probe.StateUnknown || secs(s.LagUpperBound) < 4.5 {
			t.Errorf("standby1 state %s upper bound %.2fs after the primary was down 5 s, want unknown with an upper bound >= 4.5s", s.State, secs(s.LagUpperBound))
		}
		if minBound < -1 {
			t.Errorf("the upper bound fell %.2fs behind the outage's age at some point", -minBound)
		}
		if snap.BeatsMissed < 15 || snap.Primary.Up {
			t.Errorf("beats missed %d (want >= 15), primary up %v (want false)", snap.BeatsMissed, snap.Primary.Up)
		}
		if err := c.Primary.Start(ctx); err != nil {
			t.Fatal(err)
		}
		fakes.WaitFor(t.Context(), t, 30*time.Second, "standby1 healthy after the primary returned", func() bool {
			s := r.target(t, "standby1")
			return s.State == probe.StateHealthy && s.Lag != nil && *s.Lag < time.Second
		})
	})

	t.Run("standby_down", func(t *testing.T) {
		if err := c.Standbys[0].Stop(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		s := r.target(t, "standby1")
		t.Logf("standby down 3 s: state %s lag %.2fs error %q", s.State, secs(s.Lag), s.LastError)
		if s.State != probe.StateDown {
			t.Errorf("state %s with the standby stopped, want down", s.State)
		}
		if secs(s.Lag) < 2.5 {
			t.Errorf("lag %.2fs while the standby is down 3 s, want >= 2.5s (never a silent 0)", secs(s.Lag))
		}
		if err := c.Standbys[0].Start(ctx); err != nil {
			t.Fatal(err)
		}
		fakes.WaitFor(t.Context(), t, 30*time.Second, "standby1 healthy after restart", func() bool {
			s := r.target(t, "standby1")
			return s.State == probe.StateHealthy && s.Lag != nil && *s.Lag < time.Second
		})
	})

	t.Run("promoted", func(t *testing.T) {
		if err := c.Promote(ctx, c.Standbys[0]); err != nil {
			t.Fatal(err)
		}
		fakes.WaitFor(t.Context(), t, 10*time.Second, "standby1 promoted", func() bool { return r.target(t, "standby1").State == probe.StatePromoted })
	})
}
