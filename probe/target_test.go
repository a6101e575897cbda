package probe

import (
	"log/slog"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
)

type visCollector struct {
	NopObserver
	vis []Visibility
}

func (c *visCollector) Visible(v Visibility) { c.vis = append(c.vis, v) }

// A target can show a beat before the writer's ack reaches the probe. The
// beat must be timed from the poll that first showed it once the ack
// lands, not dropped and not timed from a later poll.
func TestSeenBeforeAckIsTimedFromThatPoll(t *testing.T) {
	p := New(Config{ProbeID: "t", Interval: 100 * time.Millisecond}, slog.New(slog.DiscardHandler))
	obs := &visCollector{}
	p.Observe(obs)
	tg, err := p.Register("standby", KindStandby)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	beat := func(seq int64, sent, acked int) {
		p.Beat(heartbeat.Beat{Seq: seq, Sent: at(sent), Acked: at(acked)})
	}
	beat(1, 0, 1)
	tg.Seen(1, at(2), at(2)) // places the target
	beat(2, 100, 101)
	// Poll (150, 204] shows 3, but beat 3's ack lands only at 210.
	tg.Seen(3, at(150), at(204))
	if got, _ := tg.LastSeen(); got != 2 {
		t.Fatalf("LastSeen = %d after a poll ahead of the ring, want 2 (beat 3 not acked yet)", got)
	}
	beat(3, 202, 210)
	// Two more polls run ahead: (300, 302] shows 4, (310, 312] shows 5.
	tg.Seen(4, at(300), at(302))
	tg.Seen(5, at(310), at(312))
	beat(4, 298, 320)
	beat(5, 305, 321)
	// Each ack timed its beat as it landed: nothing is left to time.
	if tg.TimeAhead() {
		t.Fatal("TimeAhead timed again what the acks timed")
	}
	if got, _ := tg.LastSeen(); got != 5 {
		t.Fatalf("LastSeen = %d, want 5", got)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	tests := []struct {
		seq            int64
		wantVisibleAt  int     // ms after t0
		wantBound      float64 // ms
		wantDelayMilli float64
	}{
		{2, 177, 27, 76}, // (150, 204]
		{3, 203, 1, -7},  // (max(150, sent 202), 204]
		{4, 301, 1, -19}, // (300, 302]
		{5, 311, 1, -10}, // (310, 312], not (300, 312]
	}
	if len(obs.vis) != len(tests) {
		t.Fatalf("timed %d beats, want %d: %+v", len(obs.vis), len(tests), obs.vis)
	}
	for i, tt := range tests {
		v := obs.vis[i]
		if v.Beat.Seq != tt.seq || !v.VisibleAt.Equal(at(tt.wantVisibleAt)) || ms(v.ErrorBound) != tt.wantBound || ms(v.Delay) != tt.wantDelayMilli {
			t.Errorf("beat %d: got seq %d visible +%vms bound %vms delay %vms, want seq %d +%dms bound %vms delay %vms",
				i, v.Beat.Seq, ms(v.VisibleAt.Sub(t0)), ms(v.ErrorBound), ms(v.Delay), tt.seq, tt.wantVisibleAt, tt.wantBound, tt.wantDelayMilli)
		}
	}
}

// A poll that ended before a beat was even sent cannot have shown it (the
// seq was reused): the observation is dropped and counted, never timed as
// exact with bound 0.
func TestImpossibleObservationIsDropped(t *testing.T) {
	p, tg, clk := newTestProbe(t, Config{Interval: time.Second})
	beatNow(p, clk, 1)
	tg.Seen(1, clk.Now(), clk.Now())
	before := clk.Now()
	clk.Add(time.Second)
	beatNow(p, clk, 2)
	obs := &visCollector{}
	p.Observe(obs)
	// A poll in (before−1ms, before] shows seq 2, sent a second later.
	if _, ok := tg.Seen(2, before.Add(-time.Millisecond), before); ok {
		t.Fatal("an impossible observation was timed")
	}
	if len(obs.vis) != 0 {
		t.Fatalf("timed %+v", obs.vis)
	}
	if got := p.Snapshot().Targets[0].Dropped[DropBeforeSent]; got != 1 {
		t.Fatalf("dropped[before_sent] = %d, want 1", got)
	}
}

// The stream sees a beat before its ack: the beat is timed from the
// stream's bracket the moment the ack lands, without anyone waiting, and
// the stages held for it are reported then.
func TestStreamBeatTimedWhenAckLands(t *testing.T) {
	p, tg, clk := newTestProbe(t, Config{Interval: time.Second})
	obs := &stageCollector{}
	p.Observe(obs)
	beatNow(p, clk, 1)
	tg.Seen(1, clk.Now(), clk.Now())
	clk.Add(time.Second)
	sent := clk.Now()
	recvLo, recvHi := sent.Add(300*time.Microsecond), sent.Add(500*time.Microsecond)
	tg.Seen(2, recvLo, recvHi)
	tg.Stages(StreamStages{Seq: 2, Received: recvHi})
	if len(obs.vis) != 0 || len(obs.stages) != 0 {
		t.Fatal("timed before the ack")
	}
	clk.Add(time.Millisecond)
	p.Beat(heartbeat.Beat{Seq: 2, Sent: sent, Acked: clk.Now()})
	if len(obs.vis) != 1 || len(obs.stages) != 1 || obs.stages[0].Beat.Seq != 2 {
		t.Fatalf("after the ack: %d timed, %d stages, want 1 and 1 with the beat", len(obs.vis), len(obs.stages))
	}
	v := obs.vis[0]
	if v.ErrorBound != 100*time.Microsecond || !v.VisibleAt.Equal(sent.Add(400*time.Microsecond)) {
		t.Fatalf("visible at +%v ± %v, want +400µs ± 100µs", v.VisibleAt.Sub(sent), v.ErrorBound)
	}
}

type stageCollector struct {
	visCollector
	stages []StreamStages
}

func (c *stageCollector) Stages(s StreamStages) { c.stages = append(c.stages, s) }
