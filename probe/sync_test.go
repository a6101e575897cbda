package probe

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/test/cluster"
)

// visLog keeps every visibility the probe reports.
type visLog struct {
	NopObserver
	mu  sync.Mutex
	vis []Visibility
}

func (l *visLog) Visible(v Visibility) {
	l.mu.Lock()
	l.vis = append(l.vis, v)
	l.mu.Unlock()
}

// after returns the visibilities of beats with seq > seq, by target.
func (l *visLog) after(seq int64) map[string]map[int64]Visibility {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]map[int64]Visibility{}
	for _, v := range l.vis {
		if v.Beat.Seq > seq {
			if out[v.Target] == nil {
				out[v.Target] = map[int64]Visibility{}
			}
			out[v.Target][v.Beat.Seq] = v
		}
	}
	return out
}

// syncRig is a writer, the primary watcher and a reader per standby on a
// real primary with two named standbys (application_name standby1,
// standby2), all in one process on the probe's clock.
type syncRig struct {
	c   *cluster.Cluster
	p   *Probe
	log *visLog
}

func startSyncRig(ctx context.Context, t *testing.T, interval time.Duration) *syncRig {
	t.Helper()
	c := cluster.StartT(t, cluster.Options{Standbys: 2})
	logger := slog.New(slog.DiscardHandler)
	p := New(Config{ProbeID: "syncrep", Interval: interval}, logger)
	vl := &visLog{}
	p.Observe(vl)
	pcfg, err := pgconf.Parse("primary", c.Primary.DSN("walprobe"))
	if err != nil {
		t.Fatal(err)
	}
	if err := heartbeat.Check(ctx, pcfg); err != nil {
		t.Fatal(err)
	}
	w, err := heartbeat.NewWriter(heartbeat.WriterConfig{Conn: pcfg, ProbeID: "syncrep", Interval: interval,
		OnBeat: p.Beat, OnMiss: p.Missed, OnConn: p.WriterConn}, logger)
	if err != nil {
		t.Fatal(err)
	}
	runs := []func(context.Context) error{w.Run, p.Run, NewPrimaryWatcher(pcfg, p, logger).Run}
	for _, s := range c.Standbys {
		scfg, err := pgconf.Parse(s.Name, s.DSN("walprobe"))
		if err != nil {
			t.Fatal(err)
		}
		rd, err := NewReader(ReaderConfig{Name: s.Name, Kind: KindStandby, Conn: scfg, ProbeID: "syncrep", Interval: interval}, p, logger)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, rd.Run)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(rctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &syncRig{c: c, p: p, log: vl}
}

// configure sets synchronous replication on the primary with ALTER SYSTEM
// and a reload, and waits until the watcher reports the new settings and
// sync states want (target → sync_state).
func (r *syncRig) configure(ctx context.Context, t *testing.T, names, commit string, want map[string]string) {
	t.Helper()
	for _, stmt := range []string{
		"ALTER SYSTEM SET synchronous_standby_names = " + quoteLiteral(names),
		"ALTER SYSTEM SET synchronous_commit = " + quoteLiteral(commit),
		"SELECT pg_reload_conf()",
	} {
		if err := r.c.Primary.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	r.waitFor(t, 15*time.Second, fmt.Sprintf("sync states %v under %q, synchronous_commit %s", want, names, commit), func(s Snapshot) bool {
		if s.Primary.Sync == nil || s.Primary.Sync.StandbyNames != names || s.Primary.Sync.SynchronousCommit != commit {
			return false
		}
		for _, tg := range s.Targets {
			if tg.Sync == nil || tg.State != StateHealthy || tg.Sync.State != want[tg.Name] {
				return false
			}
		}
		return true
	})
}

// waitFor polls the probe's snapshot until ok or the timeout.
func (r *syncRig) waitFor(t *testing.T, d time.Duration, what string, ok func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := r.p.Snapshot()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; last snapshot: %s", what, d, describeSync(s))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func describeSync(s Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "beats %d missed %d primary up %v error %q", s.Beats, s.BeatsMissed, s.Primary.Up, s.Primary.Error)
	if sr := s.Primary.Sync; sr != nil {
		fmt.Fprintf(&b, "; sync %q commit %s waits for %v wait %v waiting %d blocked %q", sr.StandbyNames, sr.SynchronousCommit, sr.WaitsFor, sr.CommitWait, sr.Waiting, sr.Blocked)
	}
	for _, tg := range s.Targets {
		fmt.Fprintf(&b, "; %s %s lag %v", tg.Name, tg.State, tg.Lag)
		if tg.Sync != nil {
			fmt.Fprintf(&b, " sync_state %s priority %v (%s)", tg.Sync.State, tg.Sync.Priority, tg.Sync.Reason)
		}
	}
	return b.String()
}

// newestSeq is the newest acked beat's seq.
func (r *syncRig) newestSeq() int64 {
	b, _ := r.p.ring.Newest()
	return b.Seq
}

// TestSyncReplication runs walprobe against real synchronous replication:
// FIRST 1 (standby1) and ANY 1 (standby1, standby2), each with
// synchronous_commit remote_apply and on.
//
//   - Each standby target shows the sync_state and sync_priority the
//     primary gives it, and the primary's view names the standbys commits
//     wait for.
//   - Under remote_apply a commit returns only once a synchronous standby
//     has applied it, so that standby shows every beat by its ack: for each
//     timed beat, delay − error bound ≤ 0 (for ANY 1, on at least one of
//     the two quorum standbys). The numbers are logged.
//   - A cut-off synchronous standby blocks the primary's commits: beats go
//     missing, the primary's error names standby1, and standby2, which has
//     shown every acked beat, is unknown — never lagging or stalled.
func TestSyncReplication(t *testing.T) {
	ctx := context.Background()
	const interval = 200 * time.Millisecond
	r := startSyncRig(ctx, t, interval)
	r.waitFor(t, 20*time.Second, "two healthy standbys", func(s Snapshot) bool {
		return len(s.Targets) == 2 && s.Targets[0].State == StateHealthy && s.Targets[1].State == StateHealthy
	})

	// Asynchronous replication first: every standby async, priority 0,
	// and commits wait for nobody.
	r.configure(ctx, t, "", "on", map[string]string{"standby1": SyncAsync, "standby2": SyncAsync})
	if sr := r.p.Snapshot().Primary.Sync; sr.Active || len(sr.WaitsFor) != 0 || sr.CommitWait == nil || *sr.CommitWait != 0 {
		t.Errorf("asynchronous: primary sync %+v, want inactive, waits for nobody, commit wait 0", *sr)
	}

	tests := []struct {
		names, commit string
		want          map[string]string
		wantPrio      map[string]int
		wantWaitsFor  []string
		// applied: the standbys of which at least one must show each
		// beat by its ack.
		applied []string
	}{
		{"FIRST 1 (standby1)", "remote_apply", map[string]string{"standby1": SyncSync, "standby2": SyncAsync}, map[string]int{"standby1": 1, "standby2": 0}, []string{"standby1"}, []string{"standby1"}},
		{"FIRST 1 (standby1)", "on", map[string]string{"standby1": SyncSync, "standby2": SyncAsync}, map[string]int{"standby1": 1, "standby2": 0}, []string{"standby1"}, nil},
		{"ANY 1 (standby1, standby2)", "remote_apply", map[string]string{"standby1": SyncQuorum, "standby2": SyncQuorum}, map[string]int{"standby1": 1, "standby2": 1}, []string{"standby1", "standby2"}, []string{"standby1", "standby2"}},
		{"ANY 1 (standby1, standby2)", "on", map[string]string{"standby1": SyncQuorum, "standby2": SyncQuorum}, map[string]int{"standby1": 1, "standby2": 1}, []string{"standby1", "standby2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.names+"/"+tt.commit, func(t *testing.T) {
			r.configure(ctx, t, tt.names, tt.commit, tt.want)
			// Beats from now on are written under the new settings: the
			// writer's session reloads before its next statement.
			from := r.newestSeq() + 1
			const beats = 25
			s := r.waitFor(t, 30*time.Second, fmt.Sprintf("%d beats timed on both standbys", beats), func(Snapshot) bool {
				got := r.log.after(from - 1)
				return len(got["standby1"]) >= beats && len(got["standby2"]) >= beats
			})
			for _, tg := range s.Targets {
				if tg.Sync.Priority == nil || *tg.Sync.Priority != tt.wantPrio[tg.Name] {
					t.Errorf("%s: sync_priority %v, want %d", tg.Name, tg.Sync.Priority, tt.wantPrio[tg.Name])
				}
			}
			sr := s.Primary.Sync
			if got := slices.Sorted(slices.Values(sr.WaitsFor)); !slices.Equal(got, tt.wantWaitsFor) || !sr.Active {
				t.Errorf("commit waits for %v (active %v), want %v", got, sr.Active, tt.wantWaitsFor)
			}
			var rtts []time.Duration
			for seq, v := range r.log.after(from - 1)["standby1"] {
				if seq < from+beats {
					rtts = append(rtts, v.Beat.RTT())
				}
			}
			slices.Sort(rtts)
			wait := "unknown"
			if sr.CommitWait != nil {
				wait = fmt.Sprintf("%.2fms", ms(*sr.CommitWait))
			}
			t.Logf("commit wait estimate %s (%s); beat round trip median %.2fms", wait, sr.CommitWaitFrom, ms(rtts[len(rtts)/2]))
			if len(tt.applied) == 0 {
				return
			}
			got := r.log.after(from - 1)
			var worstEarly, worstBound time.Duration = -time.Hour, 0
			for seq := from; seq < from+beats; seq++ {
				var best *Visibility
				var line []string
				for _, name := range tt.applied {
					v, ok := got[name][seq]
					if !ok {
						continue
					}
					line = append(line, fmt.Sprintf("%s delay %+.2fms ± %.2fms", name, ms(v.Delay), ms(v.ErrorBound)))
					if best == nil || v.Delay-v.ErrorBound < best.Delay-best.ErrorBound {
						best = &v
					}
				}
				if best == nil {
					t.Errorf("beat %d: not timed on %v", seq, tt.applied)
					continue
				}
				t.Logf("beat %d (rtt %.2fms): %s", seq, ms(best.Beat.RTT()), strings.Join(line, ", "))
				worstEarly = max(worstEarly, best.Delay-best.ErrorBound)
				worstBound = max(worstBound, best.ErrorBound)
				if best.Delay-best.ErrorBound > 0 {
					t.Errorf("beat %d timed late on %s: delay %v − bound %v > 0, but remote_apply acks only applied commits",
						seq, best.Target, best.Delay, best.ErrorBound)
				}
			}
			t.Logf("%s: worst (delay − bound) %.2fms, worst bound %.2fms over %d beats", tt.names, ms(worstEarly), ms(worstBound), beats)
		})
	}

	// A role without pg_monitor sees the walsenders' pids only: the sync
	// states are unknown, and the reason names the GRANT.
	t.Run("without pg_monitor", func(t *testing.T) {
		r.configure(ctx, t, "FIRST 1 (standby1)", "on", map[string]string{"standby1": SyncSync, "standby2": SyncAsync})
		if err := r.c.Primary.Exec(ctx, "CREATE ROLE nomonitor LOGIN PASSWORD "+quoteLiteral(r.c.Password)); err != nil {
			t.Fatal(err)
		}
		cfg, err := pgconf.Parse("primary", r.c.Primary.DSN("nomonitor"))
		if err != nil {
			t.Fatal(err)
		}
		logger := slog.New(slog.DiscardHandler)
		p := New(Config{ProbeID: "nomonitor", Interval: interval}, logger)
		w := NewPrimaryWatcher(cfg, p, logger)
		conn, err := pgconf.Connect(ctx, "primary", cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer closeConn(conn)
		if err := w.collect(ctx, conn); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"standby1", "standby2"} {
			if got := p.Sync(name); got.Known() || !strings.Contains(got.Reason, `GRANT pg_monitor TO "nomonitor"`) {
				t.Errorf("%s without pg_monitor: %+v, want unknown, naming the GRANT", name, got)
			}
		}
		if sr := p.Snapshot().Primary.Sync; sr == nil || sr.WaitsFor != nil || sr.CommitWait != nil || sr.Hidden == "" {
			t.Errorf("primary sync without pg_monitor: %+v, want who commits wait for and the wait unknown", sr)
		}
	})

	t.Run("sync standby cut", func(t *testing.T) {
		r.configure(ctx, t, "FIRST 1 (standby1)", "on", map[string]string{"standby1": SyncSync, "standby2": SyncAsync})
		before := r.p.Snapshot()
		if err := r.c.CutReceiver(ctx, r.c.Standbys[0]); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		var last Snapshot
		var maxWaiting int64
		for time.Since(cut) < 6*time.Second {
			last = r.p.Snapshot()
			maxWaiting = max(maxWaiting, last.Primary.Sync.Waiting)
			for _, tg := range last.Targets {
				if tg.State == StateLagging || tg.State == StateStalled {
					t.Fatalf("%s is %s while only the primary's commits are blocked: %s", tg.Name, tg.State, describeSync(last))
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("after 6 s: %s", describeSync(last))
		if missed := last.BeatsMissed - before.BeatsMissed; missed < 10 {
			t.Errorf("%d beats missed in 6 s of blocked commits, want ≥ 10", missed)
		}
		if !strings.Contains(last.Primary.Error, "commits wait for synchronous standby standby1") {
			t.Errorf("primary error %q does not say commits wait for standby1", last.Primary.Error)
		}
		if sr := last.Primary.Sync; !slices.Equal(sr.WaitsFor, []string{"standby1"}) || !strings.Contains(sr.Blocked, "not streaming: standby1") {
			t.Errorf("primary sync: waits for %v, blocked %q; want standby1, not streaming", sr.WaitsFor, sr.Blocked)
		}
		t.Logf("at most %d backends seen waiting on SyncRep at one read", maxWaiting)
		for _, tg := range last.Targets {
			if tg.State != StateUnknown || tg.Lag != nil || tg.LagUpperBound == nil {
				t.Errorf("%s: state %s lag %v upper bound %v, want unknown, null lag, a bound", tg.Name, tg.State, tg.Lag, tg.LagUpperBound)
			}
			if tg.Name == "standby1" && (tg.Sync.State != SyncUnknown || !strings.Contains(tg.Sync.Reason, "not connected")) {
				t.Errorf("cut standby1: sync %+v, want unknown: listed but not connected", *tg.Sync)
			}
		}
		if err := r.c.RestoreReceiver(ctx, r.c.Standbys[0]); err != nil {
			t.Fatal(err)
		}
		r.waitFor(t, 20*time.Second, "beats again and both standbys healthy", func(s Snapshot) bool {
			return s.Beats > last.Beats+5 && s.Primary.Error == "" && s.Primary.Sync.Blocked == "" &&
				s.Targets[0].State == StateHealthy && s.Targets[1].State == StateHealthy
		})
	})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
