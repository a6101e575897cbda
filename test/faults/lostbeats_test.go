package faults

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/inproc"
)

// beatLog keeps every beat the writer acked.
type beatLog struct {
	probe.NopObserver
	mu    sync.Mutex
	beats []heartbeat.Beat
}

func (l *beatLog) Beat(b heartbeat.Beat) { l.mu.Lock(); l.beats = append(l.beats, b); l.mu.Unlock() }

func (l *beatLog) all() []heartbeat.Beat {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]heartbeat.Beat(nil), l.beats...)
}

// Beats acked by the old primary that never reach the promoted one are
// lost, not slow (issue 15.5): the writer, following a multi-host DSN to
// the promoted standby, learns how many the new server lacks; a target on
// the new server counts them as lost, times only the beats it shows, and
// its lag does not include the failover.
func TestFailoverLostBeatsAreLost(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	old, s1 := c.Primary, c.Standbys[0]
	const interval = 100 * time.Millisecond
	// The primary is a multi-host DSN that follows the promotion; the
	// target reads the standby that will be promoted, as an endpoint (a
	// read address that stays the same across the failover).
	r := inproc.New(ctx, t, inproc.Config{ProbeID: "lost", Interval: interval, NoCheck: true,
		Primary: fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres password=%s dbname=postgres sslmode=disable connect_timeout=2 target_session_attrs=read-write",
			old.Port, s1.Port, c.Password),
		Targets: []inproc.Target{{Name: "s1", Kind: probe.KindEndpoint, DSN: s1.SuperDSN()}}})
	p := r.Probe
	rec, beats := &record{}, &beatLog{}
	p.Observe(rec)
	p.Observe(beats)
	r.Start()
	defer r.Stop()
	target, _ := p.Target("s1")
	waitUntil := func(d time.Duration, what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if cond() {
				return
			}
		}
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
	waitUntil(10*time.Second, "beats timed on s1", func() bool { vis, _ := rec.snapshot(); return len(vis) >= 5 })

	// Cut s1 off: the beats the old primary acks from now on never reach it.
	if err := c.CutReceiver(ctx, s1); err != nil {
		t.Fatal(err)
	}
	shown, _ := target.LastSeen()
	time.Sleep(10 * interval)
	acked := beats.all()
	lastOld := acked[len(acked)-1].Seq
	if err := old.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, s1); err != nil {
		t.Fatal(err)
	}
	waitUntil(20*time.Second, "a beat on the promoted server", func() bool {
		bs := beats.all()
		return bs[len(bs)-1].Seq > lastOld
	})
	var first heartbeat.Beat
	for _, b := range beats.all() {
		if b.Seq > lastOld {
			first = b
			break
		}
	}
	lastOld = first.Seq - 1 // beats acked by the old primary before it stopped
	if want := lastOld - shown; first.Lost != want {
		t.Errorf("first beat on the new primary says %d lost, want %d (s1 showed %d, the old primary acked up to %d)", first.Lost, want, shown, lastOld)
	}
	waitUntil(10*time.Second, "s1 to show the new beats", func() bool { s, _ := target.LastSeen(); return s >= first.Seq+3 })
	snap := p.Snapshot()
	ts := snap.Targets[0]
	if ts.BeatsLost != lastOld-shown {
		t.Errorf("s1 beats_lost = %d, want %d", ts.BeatsLost, lastOld-shown)
	}
	vis, _ := rec.snapshot()
	for _, v := range vis {
		if v.Beat.Seq > shown && v.Beat.Seq <= lastOld {
			t.Errorf("lost beat %d was timed with delay %v", v.Beat.Seq, v.Delay)
		}
		if v.Beat.Seq >= first.Seq && v.Delay > 2*time.Second {
			t.Errorf("beat %d after the failover timed at %v: the failover leaked into a delay", v.Beat.Seq, v.Delay)
		}
	}
	if ts.Lag == nil || *ts.Lag > time.Second {
		t.Errorf("s1 lag after the failover = %v, want under 1 s (the lost beats do not hold it up)", ts.Lag)
	}
	t.Logf("s1 showed %d, old primary acked to %d, first new beat %d (lost %d); beats_lost %d", shown, lastOld, first.Seq, first.Lost, ts.BeatsLost)
}
