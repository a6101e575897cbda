package agent

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func lag(d time.Duration) *time.Duration { return &d }

func TestReply(t *testing.T) {
	const maxLag = 4 * time.Second
	healthy := func(d time.Duration) probe.TargetSnapshot {
		return probe.TargetSnapshot{Name: "a", State: probe.StateHealthy, Lag: lag(d)}
	}
	tests := []struct {
		name  string
		give  probe.TargetSnapshot
		found bool
		want  string
	}{
		{"caught up", healthy(0), true, "up ready 100%\n"},
		{"at a quarter", healthy(time.Second), true, "up ready 100%\n"},
		{"halfway down the slope", healthy(2500 * time.Millisecond), true, "up ready 51%\n"},
		{"at the bound", healthy(maxLag), true, "up ready 1%\n"},
		{"over", healthy(maxLag + time.Millisecond), true, "drain #walprobe: lag 4.001s over 4s\n"},
		{"lagging state, judged by lag", probe.TargetSnapshot{State: probe.StateLagging, Lag: lag(2 * time.Second)}, true, "up ready 67%\n"},
		{"stalled", probe.TargetSnapshot{State: probe.StateStalled, Lag: lag(time.Minute)}, true, "drain #walprobe: lag 60.000s over 4s\n"},
		{"down", probe.TargetSnapshot{State: probe.StateDown, LastError: "secret detail"}, true, "down #walprobe: target down\n"},
		{"unknown lag: in service, as ready", probe.TargetSnapshot{State: probe.StateUnknown, LagUpperBound: lag(time.Hour)}, true, "up ready 100% #walprobe: lag unknown, primary cannot be written\n"},
		{"connecting", probe.TargetSnapshot{State: probe.StateConnecting}, true, "drain #walprobe: not measured yet\n"},
		{"promoted", probe.TargetSnapshot{State: probe.StatePromoted, Lag: lag(0)}, true, "drain #walprobe: promoted, no longer a replica\n"},
		{"no such name", probe.TargetSnapshot{}, false, "down #walprobe: no target by this name (agent-send must be the walprobe target name)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Reply(tt.give, tt.found, maxLag); got != tt.want {
				t.Errorf("Reply = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWeightMonotonic(t *testing.T) {
	const maxLag = 2 * time.Second
	prev := 101
	for l := time.Duration(0); l <= maxLag; l += 10 * time.Millisecond {
		w := Weight(l, maxLag)
		if w > prev || w < 1 || w > 100 {
			t.Fatalf("Weight(%s) = %d after %d", l, w, prev)
		}
		prev = w
	}
	if prev != 1 {
		t.Errorf("Weight at the bound = %d, want 1", prev)
	}
}

// TestServer talks the protocol over TCP the way HAProxy does: connect,
// send the name and a newline, read one line, see the connection closed.
func TestServer(t *testing.T) {
	p := probe.New(probe.Config{ProbeID: "t", Interval: 10 * time.Second, LagThreshold: 2 * time.Second}, slog.New(slog.DiscardHandler))
	fresh, _ := p.Register("fresh", probe.KindStandby)
	down, _ := p.Register("down", probe.KindStandby)
	now := time.Now()
	p.Beat(heartbeat.Beat{Seq: 1, Sent: now.Add(-time.Second), Acked: now.Add(-time.Second)})
	fresh.Seen(1, now, now)
	down.Down(errors.New("connection refused"))
	s, err := New("127.0.0.1:0", 0, p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	ask := func(send string) string {
		conn, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if send != "" {
			if _, err := conn.Write([]byte(send)); err != nil {
				t.Fatal(err)
			}
		}
		line, _ := bufio.NewReader(conn).ReadString('\n')
		return line
	}
	for give, want := range map[string]string{
		"fresh\n":   "up ready 100%\n",
		"fresh\r\n": "up ready 100%\n",
		"down\n":    "down #walprobe: target down\n",
		"nosuch\n":  "down #walprobe: no target by this name",
		"":          "down #walprobe: no target name",
	} {
		if got := ask(give); !strings.HasPrefix(got, want) {
			t.Errorf("send %q: got %q, want %q", give, got, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}
