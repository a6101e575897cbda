package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
)

// haproxyConfig routes TCP connections to the standbys whose walprobe ready
// endpoint answers 200. One http-check line serves every server: uri-lf
// puts each server's name (= its walprobe target name) in the path, and
// "addr/port" send the check to walprobe instead of PostgreSQL.
const haproxyConfig = `global
    log stderr format raw local0 info

defaults
    mode tcp
    log global
    option log-health-checks
    timeout connect 2s
    timeout client 1m
    timeout server 1m
    timeout check 1s

frontend pg_reads
    bind 127.0.0.1:%[1]d
    default_backend standbys

backend standbys
    balance roundrobin
    option httpchk
    http-check send meth GET uri-lf /v1/targets/%%[srv_name]/ready?max_lag=1s
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2 on-marked-down shutdown-sessions
%[2]s`

// haproxyPath finds Debian's haproxy or fails the test saying how to
// install it.
func haproxyPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"haproxy", "/usr/sbin/haproxy"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("haproxy not found in PATH or at /usr/sbin/haproxy: the read-routing test needs it; install it with `apt-get install -y haproxy`")
	return ""
}

// haproxyFreePort returns a TCP port free on 127.0.0.1 right now.
func haproxyFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// haproxyProc is haproxy running in the foreground (-db) until the test ends.
type haproxyProc struct {
	mu  sync.Mutex // guards log
	log bytes.Buffer
}

func (h *haproxyProc) Log() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.String()
}

// startHAProxy writes cfg, checks it with -c and runs haproxy -db.
func startHAProxy(t *testing.T, cfg string) *haproxyProc {
	t.Helper()
	bin := haproxyPath(t)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c rejects the config: %v\n%s\n%s", err, out, cfg)
	}
	h := &haproxyProc{}
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			h.mu.Lock()
			h.log.WriteString(time.Now().Format("15:04:05.000 ") + sc.Text() + "\n")
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { <-drained; _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("haproxy log:\n%s", h.Log())
		}
	})
	return h
}

// readVia opens a new connection through the proxy and returns the port of
// the server it landed on and that server's heartbeat seq for probeID.
func readVia(ctx context.Context, t *testing.T, dsn, probeID string) (port int, seq int64, err error) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return 0, 0, fmt.Errorf("connect through haproxy: %w", err)
	}
	defer conn.Close(ctx)
	var p string
	err = conn.QueryRow(cctx, `SELECT current_setting('port'),
		coalesce((SELECT seq FROM walprobe.heartbeat WHERE probe_id = $1), -1)`, probeID).Scan(&p, &seq)
	if err != nil {
		return 0, 0, fmt.Errorf("query through haproxy: %w", err)
	}
	port, err = strconv.Atoi(p)
	return port, seq, err
}

// TestHAProxyReadRouting puts a real HAProxy in front of two standbys with
// walprobe's ready endpoint as the health check: connections reach both;
// once one standby's WAL receiver is cut, every new connection lands on
// the other within seconds; after restore and catch-up, reads reach both
// again, and the returning standby serves fresh data.
func TestHAProxyReadRouting(t *testing.T) {
	haproxyPath(t) // fail before starting servers when haproxy is missing
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 2})
	sb1, sb2 := c.Standbys[0], c.Standbys[1]
	const probeID = "haproxy"
	w := runProbeBinary(t, "--primary", c.Primary.DSN("walprobe"),
		"--standby", "standby1="+sb1.DSN("walprobe"),
		"--standby", "standby2="+sb2.DSN("walprobe"),
		"--interval", "200ms", "--probe-id", probeID, "--no-stream")
	_, httpPort, err := net.SplitHostPort(w.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fakes.WaitFor(t.Context(), t, 20*time.Second, "both standbys healthy", func() bool {
		s1, _ := w.targetState(t, "standby1")
		s2, _ := w.targetState(t, "standby2")
		return s1 == "healthy" && s2 == "healthy"
	})

	front := haproxyFreePort(t)
	var servers strings.Builder
	for _, sb := range []*cluster.Server{sb1, sb2} {
		fmt.Fprintf(&servers, "    server %s 127.0.0.1:%d check addr 127.0.0.1 port %s\n", sb.Name, sb.Port, httpPort)
	}
	cfg := fmt.Sprintf(haproxyConfig, front, servers.String())
	if strings.Contains(cfg, c.Password) {
		t.Fatal("the haproxy config carries the canary password")
	}
	hp := startHAProxy(t, cfg)
	dsn := strings.Replace(sb1.DSN("walprobe"), fmt.Sprintf("port=%d", sb1.Port), fmt.Sprintf("port=%d", front), 1)
	name := map[int]string{sb1.Port: "standby1", sb2.Port: "standby2"}

	// land opens n connections through haproxy and counts where they went.
	land := func(n int) map[string]int {
		t.Helper()
		got := map[string]int{}
		for range n {
			port, _, err := readVia(ctx, t, dsn, probeID)
			if err != nil {
				got["error"]++
				continue
			}
			got[name[port]]++
		}
		return got
	}

	var got map[string]int
	fakes.WaitFor(t.Context(), t, 15*time.Second, "connections through haproxy reaching both standbys", func() bool {
		got = land(6)
		return got["standby1"] > 0 && got["standby2"] > 0 && got["error"] == 0
	})
	t.Logf("before the cut: %v", got)

	if err := c.CutReceiver(ctx, sb1); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	// Every new connection on standby2: moved is when the first of ten in
	// a row was opened.
	var moved time.Duration
	var streak int
	var streakStart time.Time
	fakes.WaitFor(t.Context(), t, 8*time.Second, "ten connections in a row on standby2 after standby1's receiver is cut", func() bool {
		for range 5 {
			start := time.Now()
			port, _, err := readVia(ctx, t, dsn, probeID)
			if err != nil || name[port] != "standby2" {
				streak = 0
				continue
			}
			if streak == 0 {
				streakStart = start
			}
			if streak++; streak == 10 {
				moved = streakStart.Sub(cut)
				return true
			}
		}
		return false
	})
	t.Logf("reads moved off standby1 %v after the cut (max_lag=1s, checks every 200ms, fall 2)", moved.Round(time.Millisecond))
	if moved > 5*time.Second {
		t.Errorf("reads took %v to move off the cut standby, want under 5 s", moved)
	}
	// And they stay off while it is cut.
	if got = land(30); got["standby1"] != 0 || got["error"] != 0 {
		t.Errorf("while standby1 is cut, 30 connections went %v, want all on standby2", got)
	}
	if code, body := w.get(t, "/v1/targets/standby1/ready?max_lag=1s"); code != 503 {
		t.Errorf("ready standby1 while cut = %d %s, want 503", code, body)
	}
	if !strings.Contains(hp.Log(), "standbys/standby1") || !strings.Contains(hp.Log(), "code: 503") {
		t.Errorf("haproxy did not log standby1 failing its check with 503:\n%s", hp.Log())
	}

	if err := c.RestoreReceiver(ctx, sb1); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	var back time.Duration
	var gap int64
	fakes.WaitFor(t.Context(), t, 20*time.Second, "reads reaching standby1 again after restore", func() bool {
		port, seq, err := readVia(ctx, t, dsn, probeID)
		if err != nil || name[port] != "standby1" {
			return false
		}
		back = time.Since(restored)
		// The primary's seq, read after the standby's: how many beats the
		// standby was behind when it served this read.
		p, err := c.Primary.Scalar(ctx, "SELECT seq FROM walprobe.heartbeat WHERE probe_id = $1", probeID)
		if err != nil {
			t.Fatal(err)
		}
		pseq, _ := strconv.ParseInt(p, 10, 64)
		gap = pseq - seq
		return true
	})
	t.Logf("reads back on standby1 %v after restore, %d beats (200ms each) behind the primary", back.Round(time.Millisecond), gap)
	if gap > 10 {
		t.Errorf("standby1 served reads %d beats behind the primary when it came back, want caught up (max_lag=1s is 5 beats)", gap)
	}
	fakes.WaitFor(t.Context(), t, 10*time.Second, "connections reaching both standbys again", func() bool {
		got = land(6)
		return got["standby1"] > 0 && got["standby2"] > 0 && got["error"] == 0
	})
	t.Logf("after restore: %v", got)
	if strings.Contains(w.Logs(), c.Password) || strings.Contains(hp.Log(), c.Password) {
		t.Error("walprobe or haproxy logs carry the canary password")
	}
}

// TestHAProxyExampleConfig: the example in deploy/haproxy is valid for the
// installed haproxy and carries the very check lines TestHAProxyReadRouting
// runs, so the two cannot drift apart.
func TestHAProxyExampleConfig(t *testing.T) {
	bin := haproxyPath(t)
	path := filepath.Join("..", "..", "deploy", "haproxy", "walprobe-reads.cfg")
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", path, err, out)
	}
	example, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(fmt.Sprintf(haproxyConfig, 0, ""), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "option httpchk") || strings.HasPrefix(line, "http-check ") || strings.HasPrefix(line, "default-server ") {
			if !strings.Contains(string(example), line) {
				t.Errorf("%s lacks the tested line %q", path, line)
			}
		}
	}
}

// haproxyOutageConfig has two frontends over the same two standbys: reads
// checks ready?max_lag=1s (the default: unknown lag stays in service),
// strict checks ready?max_lag=1s&strict=true.
const haproxyOutageConfig = `global
    log stderr format raw local0 info

defaults
    mode tcp
    log global
    option log-health-checks
    timeout connect 2s
    timeout client 1m
    timeout server 1m
    timeout check 1s

frontend pg_reads
    bind 127.0.0.1:%[1]d
    default_backend reads

frontend pg_strict
    bind 127.0.0.1:%[2]d
    default_backend strict

backend reads
    balance roundrobin
    option httpchk
    http-check send meth GET uri-lf /v1/targets/%%[srv_name]/ready?max_lag=1s
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2 on-marked-down shutdown-sessions
%[3]s
backend strict
    balance roundrobin
    option httpchk
    http-check send meth GET uri-lf /v1/targets/%%[srv_name]/ready?max_lag=1s&strict=true
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2 on-marked-down shutdown-sessions
%[3]s`

// TestHAProxyPrimaryOutage stops the primary for 10 s behind a real HAProxy
// (issue 16.2): the caught-up standbys go unknown, and reads keep reaching
// both through the default check, while the strict check takes them out;
// once the primary is back both frontends serve both standbys again.
func TestHAProxyPrimaryOutage(t *testing.T) {
	haproxyPath(t)
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 2})
	sb1, sb2 := c.Standbys[0], c.Standbys[1]
	const probeID = "outage"
	w := runProbeBinary(t, "--primary", c.Primary.DSN("walprobe"),
		"--standby", "standby1="+sb1.DSN("walprobe"),
		"--standby", "standby2="+sb2.DSN("walprobe"),
		"--interval", "200ms", "--probe-id", probeID, "--no-stream")
	_, httpPort, err := net.SplitHostPort(w.Addr)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "both standbys healthy", func() bool {
		s1, _ := w.targetState(t, "standby1")
		s2, _ := w.targetState(t, "standby2")
		return s1 == "healthy" && s2 == "healthy"
	})
	reads, strict := haproxyFreePort(t), haproxyFreePort(t)
	var servers strings.Builder
	for _, sb := range []*cluster.Server{sb1, sb2} {
		fmt.Fprintf(&servers, "    server %s 127.0.0.1:%d check addr 127.0.0.1 port %s\n", sb.Name, sb.Port, httpPort)
	}
	startHAProxy(t, fmt.Sprintf(haproxyOutageConfig, reads, strict, servers.String()))
	via := func(front int) string {
		return strings.Replace(sb1.DSN("walprobe"), fmt.Sprintf("port=%d", sb1.Port), fmt.Sprintf("port=%d", front), 1)
	}
	name := map[int]string{sb1.Port: "standby1", sb2.Port: "standby2"}
	land := func(front, n int) map[string]int {
		got := map[string]int{}
		for range n {
			port, _, err := readVia(ctx, t, via(front), probeID)
			if err != nil {
				got["error"]++
				continue
			}
			got[name[port]]++
		}
		return got
	}
	both := func(got map[string]int) bool { return got["standby1"] > 0 && got["standby2"] > 0 && got["error"] == 0 }
	waitFor(t, 15*time.Second, "both frontends reaching both standbys", func() bool { return both(land(reads, 6)) && both(land(strict, 6)) })

	if err := c.Primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	waitFor(t, 5*time.Second, "both standbys unknown", func() bool {
		s1, _ := w.targetState(t, "standby1")
		s2, _ := w.targetState(t, "standby2")
		return s1 == "unknown" && s2 == "unknown"
	})
	t.Logf("standbys unknown %v after the primary stopped", time.Since(stopped).Round(time.Millisecond))
	// Give haproxy's checks (200 ms, fall 2) time to act on the strict side.
	time.Sleep(time.Second)
	var readsGot, strictGot map[string]int
	for time.Since(stopped) < 10*time.Second {
		readsGot = land(reads, 6)
		if !both(readsGot) {
			t.Fatalf("%v into the outage, the default check sent reads %v, want both standbys and no error", time.Since(stopped).Round(time.Millisecond), readsGot)
		}
		strictGot = land(strict, 2)
		if strictGot["error"] != 2 {
			t.Fatalf("%v into the outage, the strict check still sent reads %v, want none (no server)", time.Since(stopped).Round(time.Millisecond), strictGot)
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, body := w.get(t, "/v1/targets/standby1/ready?max_lag=1s")
	if code != 200 || !strings.Contains(string(body), `"lag_unknown": true`) {
		t.Errorf("ready during the outage = %d %s, want 200 with lag_unknown", code, body)
	}
	if code, body := w.get(t, "/v1/targets/standby1/ready?max_lag=1s&strict=true"); code != 503 {
		t.Errorf("strict ready during the outage = %d %s, want 503", code, body)
	}
	if err := c.Primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "both standbys healthy after the primary is back", func() bool {
		s1, _ := w.targetState(t, "standby1")
		s2, _ := w.targetState(t, "standby2")
		return s1 == "healthy" && s2 == "healthy"
	})
	waitFor(t, 10*time.Second, "the strict frontend reaching both standbys again", func() bool { return both(land(strict, 6)) })
}
