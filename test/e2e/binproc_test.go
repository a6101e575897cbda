package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/launch"
)

// binProc is the walprobe binary running in a test (test/launch): its
// HTTP address, its stderr (logs) and stdout (--json lines) as they come.
type binProc struct{ *launch.Process }

// startBin runs `walprobe run args...` with extra environment and
// returns once it serves HTTP. The process is stopped when the test ends.
func startBin(t *testing.T, env []string, args ...string) *binProc {
	t.Helper()
	return &binProc{launch.Start(t.Context(), t, launch.Options{Args: append([]string{"run"}, args...), Env: env})}
}

// get fetches path from walprobe's HTTP server.
func (p *binProc) get(t *testing.T, path string) string {
	t.Helper()
	code, b, err := p.Get(t.Context(), path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, b)
	}
	return b
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
	d, err := p.Terminate(limit)
	if p.Running() || (err != nil && launch.ExitCode(err) == -1) {
		t.Fatalf("walprobe after SIGTERM: %v:\n%s", err, p.Logs())
	}
	return d, err
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
