package probe

import (
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
)

// How a beat is timed, in one test a newcomer can read top to bottom.
//
// The writer sends beat n at Sent and gets the primary's ack at Acked. A
// reader polls the target; a poll started at S and answered at E shows a
// seq. If the previous poll (started at lower) did not show the beat and
// this one (answered at upper) does, the beat became visible somewhere in
// (lower, upper]. The estimate is the midpoint, the error bound half the
// bracket, and the delay is measured from the ack. Nothing is visible
// before it was sent, so the bracket's lower end is clipped to Sent.
func TestHowABeatIsTimed(t *testing.T) {
	p, tg, clk := newTestProbe(t, Config{Interval: time.Second})
	obs := &visCollector{}
	p.Observe(obs)
	t0 := clk.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	beat := func(seq int64, sent, acked int) {
		p.Beat(heartbeat.Beat{Seq: seq, Sent: at(sent), Acked: at(acked)})
	}

	// 1. The first poll only places the target: beats it showed before the
	// probe watched it cannot be timed.
	beat(1, 0, 2)
	if _, timed := tg.Seen(1, at(3), at(4)); timed {
		t.Fatal("the first poll timed a beat")
	}
	if got, ok := tg.LastSeen(); !ok || got != 1 {
		t.Fatalf("LastSeen = %d, %v; want 1, true", got, ok)
	}

	// 2. Beat 2 is sent at 1000 and acked at 1004. A poll started at 1000
	// did not show it; one started at 1010 and answered at 1012 does.
	// Bracket (1000, 1012]: estimate 1006, bound ±6 ms, delay 1006−1004.
	beat(2, 1000, 1004)
	v, timed := tg.Seen(2, at(1000), at(1012))
	if !timed {
		t.Fatal("beat 2 not timed")
	}
	if want := at(1006); !v.VisibleAt.Equal(want) {
		t.Errorf("visible at %v, want the bracket's midpoint %v", v.VisibleAt.Sub(t0), want.Sub(t0))
	}
	if v.ErrorBound != 6*time.Millisecond || v.Delay != 2*time.Millisecond {
		t.Errorf("delay %v ± %v, want 2ms ± 6ms", v.Delay, v.ErrorBound)
	}

	// 3. A bracket that starts before the beat was sent is clipped to
	// Sent: (1500, 2010] becomes (2000, 2010], so 2005 ± 5 ms.
	beat(3, 2000, 2003)
	v, _ = tg.Seen(3, at(1500), at(2010))
	if v.VisibleAt != at(2005) || v.ErrorBound != 5*time.Millisecond || v.Delay != 2*time.Millisecond {
		t.Errorf("clipped: visible at %v delay %v ± %v, want 2005ms, 2ms ± 5ms", v.VisibleAt.Sub(t0), v.Delay, v.ErrorBound)
	}

	// 4. A target that shows beat 5 shows beat 4 too (replay and apply keep
	// commit order): one poll times both, each from the same bracket.
	beat(4, 3000, 3001)
	beat(5, 4000, 4001)
	obs.vis = nil
	v, _ = tg.Seen(5, at(3500), at(4100))
	if len(obs.vis) != 2 || obs.vis[0].Beat.Seq != 4 || obs.vis[1].Beat.Seq != 5 {
		t.Fatalf("observers saw %d visibilities, want beats 4 and 5", len(obs.vis))
	}
	if b4 := obs.vis[0]; b4.VisibleAt != at(3800) || b4.ErrorBound != 300*time.Millisecond {
		t.Errorf("beat 4: %v ± %v, want 3800ms ± 300ms", b4.VisibleAt.Sub(t0), b4.ErrorBound)
	}
	if v.Beat.Seq != 5 || v.VisibleAt != at(4050) || v.ErrorBound != 50*time.Millisecond {
		t.Errorf("Seen returned beat %d at %v ± %v, want beat 5 at 4050ms ± 50ms", v.Beat.Seq, v.VisibleAt.Sub(t0), v.ErrorBound)
	}

	// 5. The logical stream sees the commit exactly: lower = upper, bound 0.
	beat(6, 5000, 5002)
	v, _ = tg.Seen(6, at(5001), at(5001))
	if v.ErrorBound != 0 || v.Delay != -time.Millisecond {
		t.Errorf("exact: delay %v ± %v, want −1ms ± 0 (shown before the ack came back)", v.Delay, v.ErrorBound)
	}

	// 6. A poll that shows nothing new times nothing.
	if _, timed := tg.Seen(6, at(5100), at(5200)); timed {
		t.Error("a repeated seq was timed again")
	}
}

// The lag is the age of the oldest acked beat the target has not shown,
// read on the probe's clock; it is 0 once the target shows every beat.
func TestLagIsTheOldestUnshownBeatsAge(t *testing.T) {
	p, tg, clk := newTestProbe(t, Config{Interval: time.Second})
	if _, ok := tg.Lag(); ok {
		t.Fatal("a target never polled has a lag")
	}
	beatNow(p, clk, 1)
	tg.Seen(1, clk.Now(), clk.Now())
	if got, _ := tg.Lag(); got != 0 {
		t.Fatalf("lag with every beat shown = %v, want 0", got)
	}
	clk.Add(time.Second)
	b2 := beatNow(p, clk, 2)
	clk.Add(time.Second)
	beatNow(p, clk, 3)
	clk.Add(500 * time.Millisecond)
	if got, _ := tg.Lag(); got != clk.Now().Sub(b2.Acked) {
		t.Fatalf("lag = %v, want the age of beat 2's ack %v", got, clk.Now().Sub(b2.Acked))
	}
	tg.Seen(2, clk.At(-time.Millisecond), clk.Now())
	if got, ok := tg.Lag(); got != 500*time.Millisecond || !ok {
		t.Fatalf("lag after showing beat 2 = %v, want beat 3's age 500ms", got)
	}
}

// The state follows the lag: lagging at LagThreshold, stalled once no
// beat has shown for StallAfter.
func TestStateFollowsTheLag(t *testing.T) {
	p, tg, clk := newTestProbe(t, Config{Interval: time.Second, LagThreshold: 2 * time.Second, StallAfter: 5 * time.Second})
	tg.Connected()
	beatNow(p, clk, 1)
	tg.Seen(1, clk.Now(), clk.Now())
	clk.Add(time.Second)
	beatNow(p, clk, 2) // the target does not show it
	tests := []struct {
		after time.Duration
		want  State
	}{
		{after: time.Second, want: StateHealthy},     // beat 2 is 1 s old
		{after: time.Second, want: StateLagging},     // 2 s old: LagThreshold
		{after: 2 * time.Second, want: StateLagging}, // 4 s
		{after: time.Second, want: StateStalled},     // 5 s, and no beat shown for 6 s
	}
	for _, tt := range tests {
		clk.Add(tt.after)
		tg.evaluate()
		if got := tg.State(); got != tt.want {
			lag, _ := tg.Lag()
			t.Fatalf("lag %v: state %v, want %v", lag, got, tt.want)
		}
	}
	// The writer goes on beating (with no beat for that long the lag of a
	// caught-up target would be unknown) and the target catches up.
	beatNow(p, clk, 3)
	newest, _ := p.Ring().Newest()
	tg.Seen(newest.Seq, clk.Now(), clk.Now())
	if got := tg.State(); got != StateHealthy {
		t.Fatalf("after catching up: state %v, want healthy", got)
	}
}
