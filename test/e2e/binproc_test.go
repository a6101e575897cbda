package e2e

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// binProc is the walprobe binary running in a test: its HTTP address,
// its stderr (logs) and stdout (--json lines) as they come.
type binProc struct {
	cmd  *exec.Cmd
	addr string

	mu      sync.Mutex
	logs    strings.Builder
	stdout  []string
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // cmd.Wait's result; read after exited
}

// startBin runs `walprobe run args...` with extra environment and
// returns once it serves HTTP. The process is killed when the test ends if
// it is still running.
func startBin(t *testing.T, env []string, args ...string) *binProc {
	t.Helper()
	cmd := exec.Command(buildBinary(t), append([]string{"run"}, args...)...)
	cmd.Env = append(cmd.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &binProc{cmd: cmd, exited: make(chan struct{})}
	addrc := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		re := regexp.MustCompile(`msg=serving .*addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout = append(p.stdout, sc.Text())
			p.mu.Unlock()
		}
	}()
	go func() {
		wg.Wait() // both pipes at EOF: the process has ended
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("walprobe logs:\n%s", p.Logs())
		}
	})
	select {
	case p.addr = <-addrc:
	case <-time.After(30 * time.Second):
		t.Fatalf("walprobe did not start serving within 30 s:\n%s", p.Logs())
	}
	return p
}

// Logs returns stderr so far.
func (p *binProc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Stdout returns the stdout lines so far.
func (p *binProc) Stdout() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.stdout...)
}

// get fetches path from walprobe's HTTP server.
func (p *binProc) get(t *testing.T, path string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

// stateOf returns a target's state from /v1/state ("" when absent).
func (p *binProc) stateOf(t *testing.T, target string) string {
	t.Helper()
	var s struct {
		Targets []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"targets"`
	}
	if err := json.Unmarshal([]byte(p.get(t, "/v1/state")), &s); err != nil {
		t.Fatalf("/v1/state: %v", err)
	}
	for _, tg := range s.Targets {
		if tg.Name == target {
			return tg.State
		}
	}
	return ""
}

// terminate sends SIGTERM and waits up to limit for the exit. It returns
// how long the exit took and the wait error (nil for status 0).
func (p *binProc) terminate(t *testing.T, limit time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.exited:
		return time.Since(start), p.waitErr
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		t.Fatalf("walprobe did not exit within %s of SIGTERM:\n%s", limit, p.Logs())
		return 0, nil
	}
}

// hookReceiver is a real webhook endpoint that checks every signature and
// keeps the walprobe payloads it accepted.
type hookReceiver struct {
	t      *testing.T
	secret string
	srv    *httptest.Server

	mu   sync.Mutex
	got  []map[string]any
	raw  []string
	errs int
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	h := &hookReceiver{t: t, secret: secret}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		if r.Header.Get("X-Walprobe-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("webhook: bad signature on %s", body)
		}
		var p map[string]any
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("webhook payload %s: %v", body, err)
		}
		h.mu.Lock()
		h.got = append(h.got, p)
		h.raw = append(h.raw, string(body))
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// count returns how many payloads for alert on target had status.
func (h *hookReceiver) count(alert, target, status string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, p := range h.got {
		if p["alert"] == alert && p["target"] == target && p["status"] == status {
			n++
		}
	}
	return n
}

// forTarget returns every payload about target.
func (h *hookReceiver) forTarget(target string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, p := range h.got {
		if p["target"] == target {
			out = append(out, p)
		}
	}
	return out
}

// body returns every payload received, raw.
func (h *hookReceiver) bodies() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.raw, "\n")
}

// blackhole is a TCP listener that accepts connections and never reads
// from or writes to them: a collector or webhook that hangs. (A
// non-routable address such as 10.255.255.1 is not one everywhere: on
// the project's machine an egress proxy answers it at once with 400.)
type blackhole struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func newBlackhole(t *testing.T) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		b.wg.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.conns {
			_ = c.Close()
		}
	})
	return b
}

func (b *blackhole) addr() string { return b.ln.Addr().String() }

// synBlackhole is an address where TCP connects never complete, as at a
// non-routable address on a network that drops packets: a listening
// socket with a backlog of 0 whose one queue slot the test fills itself
// and which never accepts, so the kernel drops every further SYN.
type synBlackhole struct {
	addr string
}

func newSynBlackhole(t *testing.T) *synBlackhole {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	b := &synBlackhole{addr: fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)}
	filler, err := net.DialTimeout("tcp", b.addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = filler.Close() })
	// Prove it: the next connect hangs.
	if c, err := net.DialTimeout("tcp", b.addr, 200*time.Millisecond); err == nil {
		_ = c.Close()
		t.Fatalf("connect to the SYN blackhole %s completed; the kernel did not drop the SYN", b.addr)
	}
	return b
}
