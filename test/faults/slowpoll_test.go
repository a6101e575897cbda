package faults

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/inproc"
)

// record keeps what the probe reports about one target.
type record struct {
	probe.NopObserver
	mu     sync.Mutex
	vis    []probe.Visibility
	states []probe.State
}

func (r *record) Visible(v probe.Visibility) {
	r.mu.Lock()
	r.vis = append(r.vis, v)
	r.mu.Unlock()
}

func (r *record) Transition(e probe.TransitionEvent) {
	r.mu.Lock()
	r.states = append(r.states, e.To)
	r.mu.Unlock()
}

func (r *record) snapshot() ([]probe.Visibility, []probe.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]probe.Visibility(nil), r.vis...), append([]probe.State(nil), r.states...)
}

// runProbe runs a writer on primaryDSN and one standby reader on dsn, in
// process, until the test ends.
func runProbe(ctx context.Context, t *testing.T, primaryDSN, dsn string, interval time.Duration) (*probe.Probe, *record) {
	t.Helper()
	r := inproc.New(ctx, t, inproc.Config{Primary: primaryDSN, ProbeID: "slowpoll", Interval: interval, NoCheck: true,
		Targets: []inproc.Target{{Name: "standby1", Kind: probe.KindStandby, DSN: dsn}}})
	rec := &record{}
	r.Probe.Observe(rec)
	r.Start()
	return r.Probe, rec
}

// A standby that answers slower than any poll timeout used to allow, and
// polls cancelled on a live connection, are evidence of lag, not an
// outage (issue 15.3): every beat is still timed, the truth (the standby
// shows a commit within milliseconds) lies inside every estimate ± bound,
// and the target is never down.
func TestSlowAndCancelledPollsAreEvidence(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	s1 := c.Standbys[0]
	x := newToxi(t)
	px := x.proxy(t, "standby1", s1.Port)
	dsn := strings.Replace(s1.SuperDSN(), fmt.Sprintf("port=%d", s1.Port), fmt.Sprintf("port=%d", px.Port), 1)
	const interval = 500 * time.Millisecond
	p, rec := runProbe(ctx, t, c.Primary.SuperDSN(), dsn, interval)
	waitTimed := func(n int, d time.Duration) {
		t.Helper()
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			if vis, _ := rec.snapshot(); len(vis) >= n {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		vis, states := rec.snapshot()
		t.Fatalf("timed %d beats in %v, want %d; states %v", len(vis), d, n, states)
	}
	waitTimed(3, 15*time.Second)

	// 3 s more on every reply: longer than the old 2 s poll timeout.
	before, _ := rec.snapshot()
	lat := px.add(t, "latency", "downstream", map[string]any{"latency": 3000})
	time.Sleep(12 * time.Second)
	mid, _ := rec.snapshot()
	px.remove(t, lat)
	waitTimed(len(mid)+4, 20*time.Second)
	all, states := rec.snapshot()
	slow := all[len(before):]
	newest, _ := p.Ring().Newest()
	t.Logf("%d beats timed during the 12 s of latency and after; states %v", len(slow), states)
	if len(mid)-len(before) < 2 {
		t.Errorf("only %d beats timed during 12 s of 3 s latency, want the beats the slow polls showed", len(mid)-len(before))
	}
	// Every beat acked during the fault was timed once it was over.
	var lastSeq int64
	for _, v := range all {
		lastSeq = max(lastSeq, v.Beat.Seq)
	}
	if gaps := int(lastSeq) - int(all[0].Beat.Seq) + 1 - len(all); gaps > 0 {
		t.Errorf("%d beats between seq %d and %d were never timed", gaps, all[0].Beat.Seq, lastSeq)
	}
	for _, v := range slow {
		// The standby shows a commit within milliseconds of its ack:
		// that instant must lie inside delay ± bound.
		if lo, hi := v.Delay-v.ErrorBound, v.Delay+v.ErrorBound; lo > 100*time.Millisecond || hi < -5*time.Millisecond {
			t.Errorf("beat %d: delay %v ± %v excludes the true delay (≈0)", v.Beat.Seq, v.Delay, v.ErrorBound)
		}
	}
	for _, s := range states {
		if s == probe.StateDown {
			t.Fatalf("standby went down during slow polls: states %v", states)
		}
	}
	_ = newest

	// Cancel the reader's queries on the standby, as a recovery conflict
	// would: polls fail on a live connection.
	admin, err := s1.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	n0 := len(all)
	cancelled := 0
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		var hit bool
		if err := admin.QueryRow(ctx, `SELECT coalesce(bool_or(pg_cancel_backend(pid)), false) FROM pg_stat_activity
			WHERE application_name = 'walprobe' AND state = 'active' AND pid <> pg_backend_pid()`).Scan(&hit); err != nil {
			t.Fatal(err)
		}
		if hit {
			cancelled++
		}
	}
	waitTimed(n0+4, 10*time.Second)
	_, states = rec.snapshot()
	t.Logf("%d cancels sent; states %v", cancelled, states)
	if !strings.Contains(s1.LogTail(400), "canceling statement due to user request") {
		t.Errorf("no poll was cancelled on the standby (%d cancels sent): the test proves nothing", cancelled)
	}
	for _, s := range states {
		if s == probe.StateDown {
			t.Fatalf("standby went down after cancelled polls: states %v", states)
		}
	}
}
