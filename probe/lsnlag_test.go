package probe

import (
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
)

// lsnBeat acks beat seq at the clock's time; its commit LSN is seq × 1000.
func lsnBeat(p *Probe, clk *fakeClock, seq int64) heartbeat.Beat {
	b := heartbeat.Beat{Seq: seq, Sent: clk.At(-time.Millisecond), Acked: clk.Now(), LSN: heartbeat.LSN(seq * 1000)}
	p.Beat(b)
	return b
}

// standbyRow is a pg_stat_replication row whose write, flush and replay
// positions are all lsn, sent at asOf.
func standbyRow(pid int32, lsn heartbeat.LSN, asOf time.Time) ReplicationRow {
	start := time.Date(2026, 12, 1, 0, 0, 0, int(pid), time.UTC)
	return ReplicationRow{ApplicationName: "walreceiver", ClientAddr: "127.0.0.1", PID: pid, BackendStart: &start,
		State: "streaming", SentLSN: lsn.String(), WriteLSN: lsn.String(), FlushLSN: lsn.String(), ReplayLSN: lsn.String(), AsOf: &asOf}
}

// lsnLagOf returns the lag and position age of one consumer's position.
func lsnLagOf(t *testing.T, p *Probe, now time.Time, consumer, lsn string) (lag, age time.Duration) {
	t.Helper()
	for _, l := range p.LSNLags(now) {
		if l.Consumer == consumer && l.LSNName == lsn {
			if l.Lag == nil || l.PositionAge == nil {
				t.Fatalf("%s %s: lag %v, position age %v: want both known", consumer, lsn, l.Lag, l.PositionAge)
			}
			return *l.Lag, *l.PositionAge
		}
	}
	t.Fatalf("no LSN lag for %s %s in %+v", consumer, lsn, p.LSNLags(now))
	return 0, 0
}

// A standby that had every beat when it last reported, 9 s ago, reads 0
// while beats continue: the beats acked since say nothing about it. The
// old rule compared the position with now and read ~9 s.
func TestLSNLagCaughtUpReportIsOld(t *testing.T) {
	p, _, clk := newTestProbe(t, Config{Interval: 200 * time.Millisecond})
	var seq int64
	for range 5 {
		seq++
		lsnBeat(p, clk, seq)
		clk.Add(200 * time.Millisecond)
	}
	reported := clk.Now() // has beat 5, the newest
	p.SetPrimaryClassic(ClassicPrimary{At: clk.Now(), Replication: []ReplicationRow{standbyRow(101, heartbeat.LSN(seq*1000), reported)}})
	for clk.Now().Sub(reported) < 9*time.Second {
		clk.Add(200 * time.Millisecond)
		seq++
		lsnBeat(p, clk, seq)
	}
	for _, lsn := range []string{"write", "flush", "replay"} {
		lag, age := lsnLagOf(t, p, clk.Now(), "walreceiver@127.0.0.1", lsn)
		if lag != 0 || age != 9*time.Second {
			t.Errorf("%s: lag %v, position age %v; want 0 as of a report 9s old", lsn, lag, age)
		}
	}
}

// A caught-up standby that reports after every beat, read once a second,
// never reads more than the gap between a beat's ack and its report — in
// steady beats, and when beats pause and the standby goes quiet. The old
// rule saw-toothed up to the read interval and then climbed with the
// pause.
func TestLSNLagCaughtUpNeverSawTooths(t *testing.T) {
	p, _, clk := newTestProbe(t, Config{Interval: 200 * time.Millisecond})
	const replyAfter = 5 * time.Millisecond
	var seq int64
	var pending, sent ReplicationRow // the next status message, the last one sent
	var worst time.Duration
	samples := 0
	start := clk.Now()
	for step := 0; clk.Now().Sub(start) < 20*time.Second; step++ {
		beating := clk.Now().Sub(start) < 10*time.Second // then the primary idles
		if beating && step%40 == 0 {                     // every 200 ms
			seq++
			b := lsnBeat(p, clk, seq)
			pending = standbyRow(101, b.LSN, b.Acked.Add(replyAfter))
		}
		if pending.AsOf != nil && !pending.AsOf.After(clk.Now()) {
			sent, pending = pending, ReplicationRow{}
		}
		if step%200 == 100 && sent.AsOf != nil { // read every second, between beats
			p.SetPrimaryClassic(ClassicPrimary{At: clk.Now(), Replication: []ReplicationRow{sent}})
		}
		if step%10 == 0 && p.primaryClassic != nil {
			lag, _ := lsnLagOf(t, p, clk.Now(), "walreceiver@127.0.0.1", "replay")
			worst = max(worst, lag)
			samples++
		}
		clk.Add(5 * time.Millisecond)
	}
	if samples < 300 {
		t.Fatalf("only %d samples", samples)
	}
	if worst != 0 {
		t.Errorf("caught-up standby read up to %v over 10 s of beats and 10 s idle, want 0", worst)
	}
}

// A standby whose replay is stuck keeps sending status messages with the
// old position and a fresh reply_time: its lag grows with each one.
func TestLSNLagStuckConsumerGrows(t *testing.T) {
	p, _, clk := newTestProbe(t, Config{Interval: time.Second})
	lsnBeat(p, clk, 1)
	clk.Add(time.Second)
	second := lsnBeat(p, clk, 2) // the oldest beat it never replays
	stuck := heartbeat.LSN(1000)
	var prev time.Duration
	for seq := int64(3); seq <= 30; seq++ {
		clk.Add(time.Second)
		lsnBeat(p, clk, seq)
		reply := clk.At(10 * time.Millisecond)
		clk.Add(20 * time.Millisecond)
		p.SetPrimaryClassic(ClassicPrimary{At: clk.Now(), Replication: []ReplicationRow{standbyRow(101, stuck, reply)}})
		lag, age := lsnLagOf(t, p, clk.Now(), "walreceiver@127.0.0.1", "replay")
		if want := reply.Sub(second.Acked); lag != want || age != 10*time.Millisecond {
			t.Fatalf("beat %d: lag %v, position age %v; want reply − acked(beat 2) = %v, age 10ms", seq, lag, age, want)
		}
		if lag <= prev {
			t.Fatalf("beat %d: lag %v did not grow from %v", seq, lag, prev)
		}
		prev = lag
	}
}

// Two standbys made by pg_basebackup -R on one host both show up as
// `walreceiver` from 127.0.0.1: they stay two consumers, named by
// connection order whatever order the rows come in.
func TestLSNLagTwoWalreceivers(t *testing.T) {
	p, _, clk := newTestProbe(t, Config{Interval: time.Second})
	lsnBeat(p, clk, 1)
	clk.Add(time.Second)
	lsnBeat(p, clk, 2)
	clk.Add(time.Second)
	ahead := standbyRow(101, 2000, clk.Now())  // connected first, caught up
	behind := standbyRow(202, 1000, clk.Now()) // lacks beat 2
	tests := []struct {
		name string
		give []ReplicationRow
	}{
		{"in connection order", []ReplicationRow{ahead, behind}},
		{"reversed", []ReplicationRow{behind, ahead}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.SetPrimaryClassic(ClassicPrimary{At: clk.Now(), Replication: tt.give})
			got := map[string]int32{}
			for _, l := range p.LSNLags(clk.Now()) {
				got[l.Consumer] = l.PID
			}
			want := map[string]int32{"walreceiver@127.0.0.1": 101, "walreceiver@127.0.0.1#2": 202}
			if len(got) != len(want) || got["walreceiver@127.0.0.1"] != 101 || got["walreceiver@127.0.0.1#2"] != 202 {
				t.Fatalf("consumers %v, want %v", got, want)
			}
			if lag, _ := lsnLagOf(t, p, clk.Now(), "walreceiver@127.0.0.1", "replay"); lag != 0 {
				t.Errorf("caught-up standby lag %v, want 0", lag)
			}
			if lag, _ := lsnLagOf(t, p, clk.Now(), "walreceiver@127.0.0.1#2", "replay"); lag != time.Second {
				t.Errorf("behind standby lag %v, want 1s", lag)
			}
		})
	}
}

// A slot nobody streams is as of the read: its lag grows with wall time.
// One streamed is as of its walsender's reply.
func TestLSNLagSlots(t *testing.T) {
	p, _, clk := newTestProbe(t, Config{Interval: time.Second})
	first := lsnBeat(p, clk, 1)
	for seq := int64(2); seq <= 5; seq++ {
		clk.Add(time.Second)
		lsnBeat(p, clk, seq)
	}
	pid := int32(303)
	p.SetPrimaryClassic(ClassicPrimary{At: clk.Now(), Slots: []SlotRow{
		{SlotName: "idle", SlotType: "logical", ConfirmedFlushLSN: "0/1", AsOf: clk.Now(), AsOfSource: AsOfRead},
		{SlotName: "streamed", SlotType: "physical", Active: true, ActivePID: &pid, RestartLSN: "0/FA0", AsOf: clk.At(-3 * time.Second), AsOfSource: AsOfReply},
	}})
	if lag, age := lsnLagOf(t, p, clk.Now(), "idle", "confirmed_flush"); lag != clk.Now().Sub(first.Acked) || age != 0 {
		t.Errorf("idle slot: lag %v, age %v; want %v, 0", lag, age, clk.Now().Sub(first.Acked))
	}
	// Position 4000 reported at t0+1s is past beat 2, the newest acked by
	// then; beats 3…5 came after the reply and do not count.
	if lag, age := lsnLagOf(t, p, clk.Now(), "streamed", "restart"); lag != 0 || age != 3*time.Second {
		t.Errorf("streamed slot: lag %v, age %v; want 0 as of a reply 3s old", lag, age)
	}
}

func TestReportedAt(t *testing.T) {
	read := time.Date(2026, 12, 2, 0, 0, 10, 0, time.UTC)
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name string
		give *float64
		want *time.Time
	}{
		{"no reply yet", nil, nil},
		{"2.5 s before the read", f(2.5), new(read.Add(-2500 * time.Millisecond))},
		// The standby's clock runs ahead of the primary's: the report
		// cannot be after the read.
		{"standby clock ahead", f(-0.3), &read},
	}
	for _, tt := range tests {
		got := reportedAt(read, tt.give)
		if (got == nil) != (tt.want == nil) || got != nil && !got.Equal(*tt.want) {
			t.Errorf("%s: reportedAt = %v, want %v", tt.name, got, tt.want)
		}
	}
}
