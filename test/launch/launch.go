// Package launch is the one way tests start the walprobe binary: it builds
// cmd/walprobe once per test process into a temporary directory, starts it
// with arguments and environment as an operator would, learns the HTTP
// address from --listen-addr-file (never from a log line), stops it with
// SIGTERM and then SIGKILL, and prints its logs when the test fails.
//
// A test package that uses it removes the binary at exit from TestMain:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.Cleanup(launch.Cleanup)) }
//
// It imports testing: it is a test helper, never linked into walprobe.
package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// Binary builds cmd/walprobe once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "walprobe-bin-")
		if buildErr != nil {
			return
		}
		p := filepath.Join(binDir, "walprobe")
		out, err := exec.Command("go", "build", "-o", p, "github.com/walprobe/walprobe/cmd/walprobe").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/walprobe: %v\n%s", err, out)
			return
		}
		binPath = p
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Cleanup removes the binary Binary built, if any, and exits with code.
// It is goleak.Cleanup's function, which must exit: goleak passes the
// code with its own leak check folded in.
func Cleanup(code int) {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Command returns walprobe args... as an *exec.Cmd for a one-shot command
// (setup, check, --help), killed if the test process dies first.
func Command(ctx context.Context, t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.SysProcAttr = sysProcAttr()
	return cmd
}

// Options says how to start walprobe.
type Options struct {
	// Args are the command line after the binary's name, e.g.
	// {"run", "--primary", dsn}. Start appends --listen-addr-file, and
	// --listen 127.0.0.1:0 when Args name no --listen.
	Args []string
	// Env is added to the test process's environment.
	Env []string
	// OnlyEnv makes Env the whole environment instead.
	OnlyEnv bool
	// StartTimeout bounds the wait for the address (default 30 s).
	StartTimeout time.Duration
	// StopTimeout is how long the cleanup waits after SIGTERM before
	// SIGKILL (default 15 s); a process that needs the kill fails the test.
	StopTimeout time.Duration
}

// Process is a walprobe binary running in a test.
type Process struct {
	// Addr is the bound HTTP address (host:port).
	Addr string

	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // cmd.Wait's result; read after exited

	mu     sync.Mutex // guards logs and stdout
	logs   strings.Builder
	stdout []string
}

// Start runs walprobe with opts and returns once it serves HTTP. It fails
// the test, with the logs, when walprobe exits or does not listen in time.
// The process is stopped when the test ends.
func Start(ctx context.Context, t testing.TB, opts Options) *Process {
	t.Helper()
	p, err := start(ctx, t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// StartErr is Start for a test that expects walprobe not to come up: it
// returns the error (with the logs) instead of failing.
func StartErr(ctx context.Context, t testing.TB, opts Options) (*Process, error) {
	t.Helper()
	return start(ctx, t, opts)
}

func start(ctx context.Context, t testing.TB, opts Options) (*Process, error) {
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 15 * time.Second
	}
	addrFile := filepath.Join(t.TempDir(), "addr")
	args := slices.Clone(opts.Args)
	if !slices.ContainsFunc(args, func(a string) bool { return a == "--listen" || strings.HasPrefix(a, "--listen=") }) {
		args = append(args, "--listen", "127.0.0.1:0")
	}
	args = append(args, "--listen-addr-file", addrFile)
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	if opts.OnlyEnv {
		cmd.Env = slices.Clone(opts.Env)
	}
	cmd.SysProcAttr = sysProcAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.collect(stderr, func(line string) { p.logs.WriteString(line + "\n") })
	}()
	go func() {
		defer wg.Done()
		p.collect(stdout, func(line string) { p.stdout = append(p.stdout, line) })
	}()
	go func() {
		wg.Wait() // both pipes at EOF: the process has ended
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if p.Running() {
			if _, err := p.Terminate(opts.StopTimeout); err != nil && !isSignalExit(err) {
				t.Errorf("walprobe: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("walprobe %s logs:\n%s", strings.Join(opts.Args, " "), p.Logs())
		}
	})

	deadline := time.NewTimer(opts.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(addrFile); err == nil {
			p.Addr = strings.TrimSpace(string(b))
			return p, nil
		}
		select {
		case <-p.exited:
			return p, fmt.Errorf("walprobe exited before listening (%v):\n%s", p.waitErr, p.Logs())
		case <-deadline.C:
			return p, fmt.Errorf("walprobe did not listen within %s:\n%s", opts.StartTimeout, p.Logs())
		case <-ctx.Done():
			return p, fmt.Errorf("walprobe start: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (p *Process) collect(r io.Reader, add func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		add(sc.Text())
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line over 1 MiB: keep the pipe drained
}

// isSignalExit reports whether err is the exit of a process killed by a
// signal, which Terminate's caller already knows about.
func isSignalExit(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return ws.Signaled()
		}
	}
	return false
}

// URL returns http://Addr + path.
func (p *Process) URL(path string) string { return "http://" + p.Addr + path }

// Get fetches path from walprobe's HTTP server with a 5 s timeout and
// returns the status code and body.
func (p *Process) Get(ctx context.Context, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL(path), nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Logs returns stderr so far.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Stdout returns the stdout lines so far.
func (p *Process) Stdout() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.stdout)
}

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Done is closed once the process has exited; Err then says how.
func (p *Process) Done() <-chan struct{} { return p.exited }

// Err is the process's exit (nil for status 0); valid after Done.
func (p *Process) Err() error { return p.waitErr }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Terminate sends SIGTERM and waits up to limit for the exit, then kills
// the process. It returns how long the exit took and its status (nil for
// 0); a process that needed the kill is an error.
func (p *Process) Terminate(limit time.Duration) (time.Duration, error) {
	start := time.Now()
	if !p.Running() {
		return 0, p.waitErr
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-p.exited:
		return time.Since(start), p.waitErr
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return time.Since(start), fmt.Errorf("did not exit within %s of SIGTERM: killed", limit)
	}
}

// Wait waits up to d for the process to exit by itself and returns its
// status, killing it after that.
func (p *Process) Wait(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.exited:
		return p.waitErr
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("did not exit within %s: killed", d)
	}
}

// ExitCode is the exit status of a finished command's error: 0 for nil,
// -1 when it did not exit normally.
func ExitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
