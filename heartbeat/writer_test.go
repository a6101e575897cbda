package heartbeat

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// fakeClock is a settable clock for Writer.now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time      { return c.t }
func (c *fakeClock) Add(d time.Duration) { c.t = c.t.Add(d) }

type miss struct {
	at  time.Time
	err error
}

// newTestWriter returns a writer on a fake clock that records its misses;
// it never connects.
func newTestWriter(t *testing.T, interval time.Duration) (*Writer, *fakeClock, *[]miss) {
	t.Helper()
	conn, err := pgx.ParseConfig("postgres://walprobe@127.0.0.1:1/app")
	if err != nil {
		t.Fatal(err)
	}
	var misses []miss
	w, err := NewWriter(WriterConfig{
		Conn: conn, ProbeID: "t", Interval: interval,
		OnMiss: func(at time.Time, err error) { misses = append(misses, miss{at, err}) },
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	w.now = clk.Now
	return w, clk, &misses
}

// An attempt that blocks (a connect timeout, a statement stuck behind a
// blackholed link) uses up every interval it spans; a fast failure uses
// up one. Partial intervals do not count: the ticker keeps one tick, which
// starts the next attempt.
func TestIntervalsSince(t *testing.T) {
	tests := []struct {
		give time.Duration // how long the attempt took
		want int
	}{
		{give: 0, want: 1},
		{give: 999 * time.Millisecond, want: 1},
		{give: time.Second, want: 1},
		{give: 1999 * time.Millisecond, want: 1},
		{give: 2 * time.Second, want: 2},
		{give: 10*time.Second + 500*time.Millisecond, want: 10},
	}
	for _, tt := range tests {
		w, clk, _ := newTestWriter(t, time.Second)
		start := clk.Now()
		clk.Add(tt.give)
		if got := w.intervalsSince(start); got != tt.want {
			t.Errorf("intervalsSince after %v = %d, want %d", tt.give, got, tt.want)
		}
	}
}

// A writer blocked for n intervals reports n misses, one per interval it
// could not beat in, each at the instant that interval began, so the
// probe's lag and the miss counter grow as if the beats had been tried.
func TestMissReportsEveryInterval(t *testing.T) {
	w, clk, misses := newTestWriter(t, 250*time.Millisecond)
	start := clk.Now()
	clk.Add(time.Second + 100*time.Millisecond)
	cause := errors.New("primary unreachable")
	w.miss(start, w.intervalsSince(start), cause)
	if len(*misses) != 4 {
		t.Fatalf("%d misses after 1.1 s at 250 ms, want 4", len(*misses))
	}
	for i, m := range *misses {
		if want := start.Add(time.Duration(i) * 250 * time.Millisecond); !m.at.Equal(want) || m.err != cause {
			t.Errorf("miss %d at +%v (%v), want +%v (%v)", i, m.at.Sub(start), m.err, want.Sub(start), cause)
		}
	}
}

func TestNewWriterValidates(t *testing.T) {
	conn, err := pgx.ParseConfig("postgres://walprobe@127.0.0.1:1/app")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give WriterConfig
		want string
	}{
		{name: "no DSN", give: WriterConfig{ProbeID: "t", Interval: time.Second}, want: "primary DSN is required"},
		{name: "no probe id", give: WriterConfig{Conn: conn, Interval: time.Second}, want: "probe_id is required"},
		{name: "interval too short", give: WriterConfig{Conn: conn, ProbeID: "t", Interval: 50 * time.Millisecond}, want: "below the minimum 100ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWriter(tt.give, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewWriter error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	// Every problem at once, not one per attempt.
	_, err = NewWriter(WriterConfig{}, slog.New(slog.DiscardHandler))
	if got := strings.Count(err.Error(), "\n") + 1; got != 3 {
		t.Fatalf("NewWriter(empty) reported %d problems, want 3:\n%v", got, err)
	}
}
