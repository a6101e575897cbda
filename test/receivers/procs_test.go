package receivers

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildReceivers is the command that builds the receiver binaries.
const buildReceivers = "bash .ci/build-receivers"

// toolsDir is where .ci/build-receivers puts its binaries.
func toolsDir() string {
	if d := os.Getenv("WALPROBE_TOOLS_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".cache", "walprobe", "tools")
	}
	return filepath.Join(home, ".cache", "walprobe", "tools")
}

// receiverBin returns the receiver binary env names, else name in the tools
// dir, and fails the test with the build command when it is not there.
func receiverBin(t *testing.T, env, name string) string {
	t.Helper()
	p := os.Getenv(env)
	from := "$" + env
	if p == "" {
		p = filepath.Join(toolsDir(), name)
		from = "the tools dir (${WALPROBE_TOOLS_DIR:-$HOME/.cache/walprobe/tools})"
	}
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s binary not found at %s (from %s): build it with `%s` from the repository root, or set %s",
			name, p, from, buildReceivers, env)
	}
	return p
}

// freePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// proc is a child process whose stdout and stderr go to files, so the
// test reads everything it printed without a goroutine draining pipes.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr string // file paths
	done           chan struct{}
	waitErr        error
}

// startProc starts bin with args and env (added to the environment minus
// any OTEL_* variable of the test's own), and stops it when the test ends:
// SIGTERM, then SIGKILL after 10 s. On failure its output tails are logged.
func startProc(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{name: name, stdout: filepath.Join(dir, name+".stdout"), stderr: filepath.Join(dir, name+".stderr"), done: make(chan struct{})}
	outf, err := os.Create(p.stdout)
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = outf, errf
	p.cmd.Env = append(cleanEnv(), env...)
	// A test binary killed mid-run must not leave receivers behind.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = p.cmd.Start()
	_ = outf.Close()
	_ = errf.Close()
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s stderr (tail):\n%s", name, tail(p.read(t, p.stderr), 60))
		}
	})
	return p
}

// cleanEnv is the test's environment without OTEL_* variables, so a
// developer's own OpenTelemetry settings cannot redirect the export.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// stop ends the process gracefully (receivers flush on SIGTERM) and waits.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not stop within 10s of SIGTERM; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

func (p *proc) read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s output: %v", p.name, err)
	}
	return string(b)
}

// output is everything the process printed so far, stdout then stderr.
func (p *proc) output(t *testing.T) string {
	t.Helper()
	return p.read(t, p.stdout) + p.read(t, p.stderr)
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// waitListening waits until every addr accepts TCP connections, failing
// early when p exits.
func waitListening(t *testing.T, p *proc, d time.Duration, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				_ = c.Close()
				break
			}
			if done, werr := p.exited(); done {
				t.Fatalf("%s exited before listening on %s (%v):\n%s", p.name, a, werr, tail(p.output(t), 40))
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not listening on %s after %s:\n%s", p.name, a, d, tail(p.output(t), 40))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// eventually polls cond every 250 ms until it holds or d passes, failing
// early when any of procs exits.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return
		}
		for _, p := range procs {
			if done, err := p.exited(); done {
				t.Fatalf("waiting for %s: %s exited (%v):\n%s", what, p.name, err, tail(p.output(t), 40))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// httpClient keeps no idle connections, so no transport goroutine outlives
// a test (goleak).
var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get fetches url and returns the body of a 200 response.
func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, errors.New(resp.Status)
	}
	return b, nil
}
