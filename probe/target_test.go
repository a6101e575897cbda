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
	if !tg.TimeAhead() {
		t.Fatal("TimeAhead timed nothing")
	}
	if tg.TimeAhead() {
		t.Fatal("second TimeAhead timed again")
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
