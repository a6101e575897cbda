package probe

import (
	"testing"
	"time"
)

func TestScheduleDenseAroundExpectedDelay(t *testing.T) {
	s := newSchedule(time.Second)
	for range 8 {
		s.observe(time.Second)
	}
	first := s.nextPoll(-1)
	if first >= time.Second || first < 950*time.Millisecond {
		t.Fatalf("first poll at %v, want just before 1s", first)
	}
	// Dense (1 ms) across the expected delay.
	p := first
	for p < time.Second+10*time.Millisecond {
		n := s.nextPoll(p)
		if n-p > 2*time.Millisecond {
			t.Fatalf("gap %v at %v inside the dense window", n-p, p)
		}
		p = n
	}
	// Backs off past the window, never beyond the cap.
	for range 100 {
		n := s.nextPoll(p)
		if n-p > s.maxStep {
			t.Fatalf("gap %v over cap %v", n-p, s.maxStep)
		}
		p = n
	}
	if s.nextPoll(p)-p != s.maxStep {
		t.Fatalf("after a long wait the gap is %v, want the cap %v", s.nextPoll(p)-p, s.maxStep)
	}
}

func TestScheduleFreshTargetPollsAtAck(t *testing.T) {
	s := newSchedule(time.Second)
	if got := s.nextPoll(-1); got != 0 {
		t.Fatalf("first poll with no history at %v, want 0", got)
	}
	if got := s.nextPoll(0); got != time.Millisecond {
		t.Fatalf("second poll at %v, want 1ms", got)
	}
}
