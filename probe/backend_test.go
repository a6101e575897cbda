package probe

import (
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A read endpoint over two servers, one of them cut off: polls alternate
// between them (a pooler with a host list). The endpoint's lag is the cut
// server's, growing; its state is not healthy; the backend list names the
// cut server; each server's beats are timed from its own brackets. On the
// previous code a poll showing an older seq was ignored, so the endpoint
// read the fresh server's lag, ≈ 0.
func TestEndpointLagIsTheWorstBackend(t *testing.T) {
	p, _, clk := newTestProbe(t, Config{Interval: time.Second, LagThreshold: 2 * time.Second})
	ep, err := p.Register("reads", KindEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	obs := &visCollector{}
	p.Observe(obs)
	const a, b = "10.0.0.1:5432", "10.0.0.2:5432"
	poll := func(server string, seq int64) {
		start := clk.Now()
		clk.Add(time.Millisecond)
		ep.SeenFrom(server, seq, start, clk.Now())
	}
	beatNow(p, clk, 1)
	poll(a, 1)
	poll(b, 1)
	// Both show beats 2 and 3, then b is cut off after 3.
	for seq := int64(2); seq <= 10; seq++ {
		clk.Add(time.Second)
		beatNow(p, clk, seq)
		clk.Add(5 * time.Millisecond)
		poll(a, seq)
		bs := min(seq, 3)
		poll(b, bs)
	}
	s := p.Snapshot().Targets[0]
	if s.Lag == nil || float64(*s.Lag) < 5.9 {
		t.Fatalf("endpoint lag %v, want ≥ 5.9 s (b has not shown beat 4, acked 6 s ago)", s.Lag)
	}
	if s.State == StateHealthy {
		t.Fatalf("endpoint healthy with one of two servers 6 s behind")
	}
	if len(s.Backends) != 2 || s.Backends[0].Server != b || s.Backends[0].Lag == nil || *s.Backends[0].LastSeq != 3 {
		t.Fatalf("backends %+v, want b first (worst), showing seq 3", s.Backends)
	}
	if l := s.Backends[1].Lag; l == nil || float64(*l) > 0.01 {
		t.Fatalf("server a lag %v, want ≈ 0", l)
	}
	// Beats were timed per server: a timed 2..10, b timed 2..3.
	per := map[string]int{}
	for _, v := range obs.vis {
		per[v.Backend]++
		if v.ErrorBound > 10*time.Millisecond {
			t.Errorf("beat %d on %s bound %v: a bracket spans servers", v.Beat.Seq, v.Backend, v.ErrorBound)
		}
	}
	if per[a] != 9 || per[b] != 2 {
		t.Fatalf("beats timed per server %v, want a 9, b 2", per)
	}
	// b catches up: healthy again.
	poll(b, 10)
	if s := p.Snapshot().Targets[0]; s.State != StateHealthy || s.Lag == nil || float64(*s.Lag) > 0.01 {
		t.Fatalf("after b caught up: state %s lag %v, want healthy ≈ 0", s.State, s.Lag)
	}
	// A server that stops answering for longer than the window no longer
	// counts (it left the pool).
	for seq := int64(11); seq <= 25; seq++ {
		clk.Add(time.Second)
		beatNow(p, clk, seq)
		clk.Add(5 * time.Millisecond)
		poll(a, seq)
	}
	if s := p.Snapshot().Targets[0]; s.Lag == nil || float64(*s.Lag) > 0.01 {
		t.Fatalf("lag %v with b silent for 15 s (window 10 s), want a's ≈ 0", s.Lag)
	}
}

// A connection through a pooler reaches a fresh server and a cut-off one.
// Once the fresh one shows the newest beat, the connection still has a
// beat to poll for (the cut server's first unshown), as a server that is
// behind; a new beat takes over at once, as the freshest server's. On the
// previous code the connection followed only the server that answered it
// last: after the fresh server answered it went idle, so behind pgpool-II
// (classic query on the primary) the standbys got no polls and the
// endpoint read lag 0 with one cut off.
func TestEndpointConnectionPollsUntilEveryServerShows(t *testing.T) {
	p, _, clk := newTestProbe(t, Config{Interval: time.Second})
	r, err := NewReader(ReaderConfig{Name: "reads", Kind: KindEndpoint, Conn: &pgx.ConnConfig{}, ProbeID: "t"}, p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.now = clk.Now
	poll := func(server string, seq int64) {
		start := clk.Now()
		clk.Add(time.Millisecond)
		r.seenFrom(server, seq, start, clk.Now())
	}
	const fresh, cut, primary = "10.0.0.1:5432", "10.0.0.2:5432", "10.0.0.3:5432"
	beatNow(p, clk, 1)
	poll(fresh, 1)
	poll(cut, 1)
	if _, ok, _ := r.nextBeat(); ok {
		t.Fatal("a beat outstanding with both servers showing the only one")
	}
	clk.Add(time.Second)
	beatNow(p, clk, 2)
	if b, ok, behind := r.nextBeat(); !ok || b.Seq != 2 || behind {
		t.Fatalf("after beat 2: polls for %d (outstanding %t, behind %t), want 2 as the newest", b.Seq, ok, behind)
	}
	poll(fresh, 2)
	poll(cut, 1)
	poll(fresh, 2) // answered last: the previous code went idle here
	if b, ok, behind := r.nextBeat(); !ok || b.Seq != 2 || !behind {
		t.Fatalf("fresh server at 2, cut at 1: polls for %d (outstanding %t, behind %t), want 2 for the server behind", b.Seq, ok, behind)
	}
	clk.Add(time.Second)
	beatNow(p, clk, 3)
	if b, ok, behind := r.nextBeat(); !ok || b.Seq != 3 || behind {
		t.Fatalf("after beat 3: polls for %d (outstanding %t, behind %t), want 3 as the newest", b.Seq, ok, behind)
	}
	// A server that is always first to show a beat (pgpool-II sends the
	// classic query to the primary) does not end the dense polls for the
	// newest beat while the fresh server has not shown it, nor turn them
	// to the cut server's beat 2.
	poll(primary, 3)
	if b, ok, _ := r.nextBeat(); !ok || b.Seq != 3 {
		t.Fatalf("primary at 3, fresh at 2, cut at 1: polls for %d (outstanding %t), want 3 for the fresh server", b.Seq, ok)
	}
	poll(fresh, 3)
	// The cut server leaves this connection's rotation: past the window
	// it no longer keeps the connection polling.
	for seq := int64(4); seq <= 15; seq++ {
		clk.Add(time.Second)
		beatNow(p, clk, seq)
		poll(fresh, seq)
		poll(primary, seq)
	}
	if b, ok, _ := r.nextBeat(); ok {
		t.Fatalf("polls for %d with the cut server silent for 12 s (window 10 s), want idle", b.Seq)
	}
}
