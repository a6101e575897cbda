package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/launch"
)

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoCtrlCLeavesNothing runs `walprobe demo`, waits for the live
// table to show true and classic numbers for every target, sends SIGINT,
// and checks that no server process and no temporary directory remain.
func TestDemoCtrlCLeavesNothing(t *testing.T) {
	cmd := launch.Command(t.Context(), t, "demo", "--listen", "127.0.0.1:0", "--interval", "200ms")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fakes.WaitFor(t.Context(), t, 40*time.Second, "the demo table with every target healthy", func() bool {
		s := out.String()
		i := strings.LastIndex(s, "walprobe demo   primary")
		if i < 0 {
			return false
		}
		frame := s[i:]
		return strings.Count(frame, "healthy") >= 3 && strings.Contains(frame, "standby1") && strings.Contains(frame, "subscriber") && strings.Contains(frame, "CLASSIC")
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo exited with %v after Ctrl-C, want 0\n%s", err, tail(out.String()))
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("demo did not exit within 20 s of SIGINT\n%s", tail(out.String()))
	}
	m := regexp.MustCompile(`removing (\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("demo did not say which directory it removed:\n%s", tail(out.String()))
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("demo left %s behind (stat: %v)", m[1], err)
	}
	ps, _ := exec.Command("pgrep", "-f", m[1]).Output()
	if len(bytes.TrimSpace(ps)) > 0 {
		t.Errorf("processes still use %s: pids %s", m[1], ps)
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}
