// Package walprobebin builds the walprobe binary once per test process and
// runs it the way an operator does, so tests in several packages (test/tls,
// test/soak) share one way to start it and find its HTTP address.
package walprobebin

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Build builds cmd/walprobe once per test process and returns its path.
// Remove deletes it; call it from TestMain after m.Run.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "walprobe-bin-")
		if err != nil {
			buildErr = err
			return
		}
		p := filepath.Join(dir, "walprobe")
		out, err := exec.Command("go", "build", "-o", p, "github.com/walprobe/walprobe/cmd/walprobe").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build walprobe: %v\n%s", err, out)
			return
		}
		binPath = p
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Remove deletes the binary Build made, if any.
func Remove() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

var serving = regexp.MustCompile(`msg=serving .*addr=(\S+)`)

// Start starts cmd and returns the address it serves HTTP on and a channel
// that yields its whole stderr once it exits. The process is killed when
// the test ends if it still runs.
func Start(t testing.TB, cmd *exec.Cmd) (addr string, logs <-chan string) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lc := make(chan string, 1)
	addrc := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if m := serving.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		lc <- all.String()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	select {
	case addr = <-addrc:
		return addr, lc
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("walprobe did not start serving:\n%s", <-lc)
	}
	return "", nil
}

// Wait waits up to d for cmd to exit, killing it after that.
func Wait(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("did not exit within %s", d)
	}
}
