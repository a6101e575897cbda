package heartbeat

import (
	"testing"
	"time"
)

func beats(n int, start time.Time) []Beat {
	out := make([]Beat, n)
	for i := range out {
		out[i] = Beat{Seq: int64(i + 1), Acked: start.Add(time.Duration(i) * time.Second), LSN: LSN(1000 * (i + 1))}
	}
	return out
}

func TestRingBoundedAndFirstAfter(t *testing.T) {
	r := NewRing(1024)
	t0 := time.Unix(0, 0)
	for i := range 100000 {
		r.Push(Beat{Seq: int64(i + 1), Acked: t0.Add(time.Duration(i) * time.Millisecond), LSN: LSN(i + 1)})
	}
	if r.Len() != 1024 || cap(r.buf) != 1024 {
		t.Fatalf("ring holds %d (cap %d) after 100,000 beats, want 1024", r.Len(), cap(r.buf))
	}
	b, ok := r.FirstAfter(99990)
	if !ok || b.Seq != 99991 {
		t.Fatalf("FirstAfter(99990) = %d, %v", b.Seq, ok)
	}
	// Far behind the ring: the oldest held beat, a lower bound of the lag.
	if b, ok := r.FirstAfter(5); !ok || b.Seq != 100000-1024+1 {
		t.Fatalf("FirstAfter(5) = %d, %v", b.Seq, ok)
	}
	if _, ok := r.FirstAfter(100000); ok {
		t.Fatal("FirstAfter(newest) found a beat")
	}
	n := 0
	r.Between(99000, 99010, func(Beat) { n++ })
	if n != 10 {
		t.Fatalf("Between returned %d beats, want 10", n)
	}
}

func TestParseLSN(t *testing.T) {
	l, err := ParseLSN("16/B374D848")
	if err != nil || l != LSN(0x16B374D848) || l.String() != "16/B374D848" {
		t.Fatalf("ParseLSN = %v, %v", l, err)
	}
	if _, err := ParseLSN("nope"); err == nil {
		t.Fatal("ParseLSN accepted garbage")
	}
}

func TestRingLSNLagAsOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := NewRing(8)
	for _, b := range beats(5, t0) { // LSNs 1000..5000, acked t0..t0+4s
		r.Push(b)
	}
	tests := []struct {
		name string
		give LSN
		at   time.Time
		want time.Duration
	}{
		{"past every beat", 5000, t0.Add(10 * time.Second), 0},
		// Reported at t0+2.5s holding beat 3: beats 4 and 5 came later.
		{"caught up as of the report", 3000, t0.Add(2500 * time.Millisecond), 0},
		{"caught up at the ack instant", 3000, t0.Add(2 * time.Second), 0},
		{"behind as of the report", 1500, t0.Add(2500 * time.Millisecond), 1500 * time.Millisecond},
		{"stuck, later report", 1500, t0.Add(9 * time.Second), 8 * time.Second},
		{"below the ring", 10, t0.Add(3 * time.Second), 3 * time.Second},
	}
	for _, tt := range tests {
		if got, ok := r.LSNLagAsOf(tt.give, tt.at); !ok || got != tt.want {
			t.Errorf("%s: LSNLagAsOf(%d, t0+%v) = %v, %v; want %v", tt.name, tt.give, tt.at.Sub(t0), got, ok, tt.want)
		}
	}
	if _, ok := r.LSNLagAsOf(10, t0.Add(-time.Second)); ok {
		t.Error("a report older than every beat answered")
	}
	if _, ok := NewRing(4).LSNLagAsOf(1, t0); ok {
		t.Error("empty ring answered")
	}
}
