package probe

import (
	"testing"
	"time"
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
