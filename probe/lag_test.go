package probe

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
)

// fakeClock is a settable clock for Probe.now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time               { return c.t }
func (c *fakeClock) Add(d time.Duration)          { c.t = c.t.Add(d) }
func (c *fakeClock) At(d time.Duration) time.Time { return c.t.Add(d) }

// newTestProbe returns a probe on a fake clock with one standby target.
func newTestProbe(t *testing.T, cfg Config) (*Probe, *Target, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	if cfg.ProbeID == "" {
		cfg.ProbeID = "t"
	}
	p := New(cfg, slog.New(slog.DiscardHandler))
	p.now = clk.Now
	tg, err := p.Register("standby", KindStandby)
	if err != nil {
		t.Fatal(err)
	}
	return p, tg, clk
}

// beatNow acks beat seq at the clock's time (sent 1 ms earlier).
func beatNow(p *Probe, clk *fakeClock, seq int64) heartbeat.Beat {
	b := heartbeat.Beat{Seq: seq, Sent: clk.At(-time.Millisecond), Acked: clk.Now()}
	p.Beat(b)
	return b
}

// A target cut off for far longer than the ring spans keeps the ack time
// of its oldest unshown beat: its lag grows for as long as the fault
// lasts, not up to the ring's span and then flat.
func TestLagGrowsPastTheRing(t *testing.T) {
	const ring = 16
	p, tg, clk := newTestProbe(t, Config{Interval: time.Second, RingSize: ring})
	beatNow(p, clk, 1)
	tg.Seen(1, clk.Now(), clk.Now()) // places the target
	clk.Add(time.Second)
	first := beatNow(p, clk, 2) // the oldest beat it will not show
	for seq := int64(3); seq <= 10*ring; seq++ {
		clk.Add(time.Second)
		beatNow(p, clk, seq)
	}
	clk.Add(time.Second)
	got, ok := tg.Lag()
	if want := clk.Now().Sub(first.Acked); !ok || got != want {
		t.Fatalf("lag after 10 ring spans = %v (ok %v), want now − acked(beat 2) = %v", got, ok, want)
	}
	// The target reconnects and still shows beat 1: same oldest unshown beat.
	tg.Down(errors.New("connection refused"))
	tg.Connected()
	tg.Seen(1, clk.Now(), clk.Now())
	if got, _ := tg.Lag(); got != clk.Now().Sub(first.Acked) {
		t.Fatalf("lag after a reconnect = %v, want %v", got, clk.Now().Sub(first.Acked))
	}
	// It catches up with everything: lag 0.
	newest, _ := p.ring.Newest()
	tg.Seen(newest.Seq, clk.Now(), clk.Now())
	if got, _ := tg.Lag(); got != 0 {
		t.Fatalf("lag after catching up = %v, want 0", got)
	}
}

// A snapshot's state and lag come from one evaluation: never healthy
// beside a lag over the threshold, even between the probe's ticks.
func TestSnapshotStateAgreesWithLag(t *testing.T) {
	p, tg, clk := newTestProbe(t, Config{Interval: time.Second, LagThreshold: 2 * time.Second})
	beatNow(p, clk, 1)
	tg.Seen(1, clk.Now(), clk.Now())
	tg.evaluate()
	if got := tg.State(); got != StateHealthy {
		t.Fatalf("state %v, want healthy", got)
	}
	clk.Add(time.Second)
	beatNow(p, clk, 2)
	clk.Add(3 * time.Second) // no tick evaluated the target since
	s := p.Snapshot()
	ts := s.Targets[0]
	if ts.Lag == nil || *ts.Lag != 3*time.Second || ts.State != StateLagging {
		lag := "unknown"
		if ts.Lag != nil {
			lag = ts.Lag.String()
		}
		t.Fatalf("snapshot: state %v lag %v, want lagging with lag 3s", ts.State, lag)
	}
	if !ts.StateSince.Equal(clk.Now()) {
		t.Fatalf("state_since %v, want the snapshot's instant %v", ts.StateSince, clk.Now())
	}
}

// An error from a fault that is over does not stay on a target that is
// measured again.
func TestLastErrorClearsOnceMeasuredAgain(t *testing.T) {
	p, tg, clk := newTestProbe(t, Config{Interval: time.Second})
	beatNow(p, clk, 1)
	tg.Seen(1, clk.Now(), clk.Now())
	tg.Down(errors.New("standby (127.0.0.1:1/db): connection refused"))
	if got := p.Snapshot().Targets[0].LastError; got == "" {
		t.Fatal("no last_error while down")
	}
	tg.Connected()
	tg.Seen(1, clk.Now(), clk.Now())
	if s := p.Snapshot().Targets[0]; s.State != StateHealthy || s.LastError != "" {
		t.Fatalf("after recovery: state %v last_error %q, want healthy and none", s.State, s.LastError)
	}
}

// Beats a failover lost are counted per target, never timed, and do not
// hold the lag up.
func TestLostBeatsAreNotTimed(t *testing.T) {
	p, tg, clk := newTestProbe(t, Config{Interval: time.Second})
	obs := &visCollector{}
	p.Observe(obs)
	beatNow(p, clk, 1)
	tg.Seen(1, clk.Now(), clk.Now())
	for seq := int64(2); seq <= 4; seq++ { // acked by the old primary only
		clk.Add(time.Second)
		beatNow(p, clk, seq)
	}
	clk.Add(30 * time.Second) // the failover
	if got, _ := tg.Lag(); got != 32*time.Second {
		t.Fatalf("lag during the failover = %v, want 32s (beat 2 unshown)", got)
	}
	b := heartbeat.Beat{Seq: 5, Sent: clk.At(-time.Millisecond), Acked: clk.Now(), Lost: 3}
	p.Beat(b)
	if got, _ := tg.Lag(); got != 0 {
		t.Fatalf("lag once beats 2–4 are known lost = %v, want 0 (only beat 5 is due, acked now)", got)
	}
	clk.Add(5 * time.Millisecond)
	tg.Seen(5, clk.At(-time.Millisecond), clk.Now())
	if len(obs.vis) != 1 || obs.vis[0].Beat.Seq != 5 {
		t.Fatalf("timed %+v, want only beat 5", obs.vis)
	}
	if got := p.Snapshot().Targets[0].BeatsLost; got != 3 {
		t.Fatalf("beats_lost = %d, want 3", got)
	}
}
