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
	first := s.nextPoll(-1, 0)
	if first >= time.Second || first < 950*time.Millisecond {
		t.Fatalf("first poll at %v, want just before 1s", first)
	}
	// Dense (1 ms) across the expected delay.
	p := first
	for p < time.Second+10*time.Millisecond {
		n := s.nextPoll(p, 0)
		if n-p > 2*time.Millisecond {
			t.Fatalf("gap %v at %v inside the dense window", n-p, p)
		}
		p = n
	}
	// Backs off past the window, never beyond the cap.
	for range 100 {
		n := s.nextPoll(p, 0)
		if n-p > s.maxStep {
			t.Fatalf("gap %v over cap %v", n-p, s.maxStep)
		}
		p = n
	}
	if s.nextPoll(p, 0)-p != s.maxStep {
		t.Fatalf("after a long wait the gap is %v, want the cap %v", s.nextPoll(p, 0)-p, s.maxStep)
	}
}

func TestScheduleFreshTargetPollsAtAck(t *testing.T) {
	s := newSchedule(time.Second)
	if got := s.nextPoll(-1, 0); got != 0 {
		t.Fatalf("first poll with no history at %v, want 0", got)
	}
	if got := s.nextPoll(0, 0); got != time.Millisecond {
		t.Fatalf("second poll at %v, want 1ms", got)
	}
}

// A beat whose ack came back late can be visible that much earlier after
// the ack: the first poll moves back by the round trip so it still misses.
func TestScheduleStartsEarlierAfterASlowAck(t *testing.T) {
	s := newSchedule(250 * time.Millisecond)
	for range 8 {
		s.observe(time.Second)
	}
	fast, slow := s.nextPoll(-1, 300*time.Microsecond), s.nextPoll(-1, 20*time.Millisecond)
	if got := fast - slow; got != 20*time.Millisecond-300*time.Microsecond {
		t.Fatalf("first poll after a 20ms ack is %v earlier than after a 0.3ms ack, want %v", got, 20*time.Millisecond-300*time.Microsecond)
	}
	// Still dense from there through the expected delay.
	p := slow
	for p < time.Second {
		n := s.nextPoll(p, 20*time.Millisecond)
		if n-p > s.step {
			t.Fatalf("gap %v at %v before the expected delay", n-p, p)
		}
		p = n
	}
}
