package jsonl

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLine pins the line's shape: seconds with microseconds, the beat's
// LSN as PostgreSQL prints it.
func TestLine(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	lines := make(chan string, 1)
	w := New(writerFunc(func(b []byte) { lines <- string(b) }), slog.New(slog.DiscardHandler))
	w.Visible(probe.Visibility{
		Target: "standby1", Kind: probe.KindStandby,
		Beat:      heartbeat.Beat{Seq: 7, Sent: t0, Acked: t0.Add(3 * time.Millisecond), LSN: 0x3000700},
		VisibleAt: t0.Add(5 * time.Millisecond), Delay: 2 * time.Millisecond, ErrorBound: 500 * time.Microsecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	var got string
	select {
	case got = <-lines:
	case <-time.After(5 * time.Second):
		t.Error("no line within 5s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := `{"target":"standby1","kind":"standby","seq":7,"lsn":"0/3000700","sent":"2026-12-02T10:00:00Z","acked":"2026-12-02T10:00:00.003Z","visible_at":"2026-12-02T10:00:00.005Z","delay_seconds":0.002000,"error_bound_seconds":0.000500}` + "\n"
	if got != want {
		t.Errorf("line:\ngot  %s\nwant %s", got, want)
	}
}

// TestDropsWhenFull: the probe is never blocked by a slow output.
func TestDropsWhenFull(t *testing.T) {
	w := New(&bytes.Buffer{}, slog.New(slog.DiscardHandler))
	for range QueueSize + 3 {
		w.Visible(probe.Visibility{})
	}
	if got := w.Dropped(); got != 3 {
		t.Errorf("Dropped() = %d, want 3", got)
	}
}

// writerFunc hands each write to a function.
type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(bytes.Clone(b)); return len(b), nil }
