package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/test/cluster"
)

// TestEndpointTopologies reads the same two standbys through the three
// kinds of read endpoint that hand an application's reads to more than one
// server (issue 14.1), each with the walprobe binary at its default 1 s
// interval:
//   - pgbouncer: one database entry with a host list and
//     server_round_robin = 1, transaction pooling, its pool warmed by
//     concurrent clients; successive polls on one client connection land on
//     different server connections, so on both standbys;
//   - pgpool-II: load_balance_mode with statement_level_load_balance, so
//     each statement picks a standby;
//   - HAProxy mode tcp, balance roundrobin: each connection lands on one
//     standby, so walprobe must open more connections to find the second.
//
// For each: the endpoint is healthy and lists both standbys as backends
// (the time that took is logged as discovery); standby1's WAL receiver is
// cut for 10 s, and the endpoint reads lag >= 9 s, is not healthy, its
// ready?max_lag=1s answers 503 and its backends list names standby1's
// server as the one behind; restored, it is healthy again.
func TestEndpointTopologies(t *testing.T) {
	pgbouncer := daemonPath(t, "/usr/sbin/pgbouncer", "pgbouncer")
	pgpool := daemonPath(t, "/usr/sbin/pgpool", "pgpool2")
	haproxyPath(t)
	c := cluster.StartT(t, cluster.Options{Standbys: 2})
	tests := []struct {
		name  string
		start func(t *testing.T) string // starts the endpoint, returns walprobe's DSN through it
	}{
		{name: "pgbouncer", start: func(t *testing.T) string { return startPgBouncerHostList(t, c, pgbouncer) }},
		{name: "pgpool", start: func(t *testing.T) string { return startPgpool(t, c, pgpool) }},
		{name: "haproxy", start: func(t *testing.T) string { return startHAProxyRoundRobin(t, c) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := tt.start(t)
			cutBehindEndpoint(t, c, tt.name, dsn)
		})
	}
}

// cutBehindEndpoint runs walprobe on the endpoint at dsn and walks it
// through discovery, a 10 s cut of standby1's WAL receiver and the restore.
func cutBehindEndpoint(t *testing.T, c *cluster.Cluster, kind, dsn string) {
	ctx := context.Background()
	sb1, sb2 := c.Standbys[0], c.Standbys[1]
	cutSrv, okSrv := fmt.Sprintf("127.0.0.1:%d", sb1.Port), fmt.Sprintf("127.0.0.1:%d", sb2.Port)
	const name = "readers"
	w := runProbeBinary(t, "--primary", c.Primary.DSN("walprobe"),
		"--endpoint", name+"="+dsn, "--probe-id", "endpoint_"+kind, "--no-stream")
	started := time.Now()

	var ep endpointState
	var healthyAt time.Duration
	found := map[string]time.Duration{} // when each server first showed in backends
	waitFor(t, 60*time.Second, "the endpoint healthy with both standbys as backends", func() bool {
		ep = endpointOf(t, w, name)
		if ep.State == "healthy" && healthyAt == 0 {
			healthyAt = time.Since(started)
		}
		for _, b := range ep.Backends {
			if _, ok := found[b.Server]; !ok {
				found[b.Server] = time.Since(started)
			}
		}
		return ep.State == "healthy" && ep.backend(cutSrv) != nil && ep.backend(okSrv) != nil
	})
	discovery := time.Since(started)
	t.Logf("%s: healthy %v, both standbys found %v after walprobe started serving (interval 1 s; standby1 at %v, standby2 at %v); backends %s",
		kind, healthyAt.Round(time.Millisecond), discovery.Round(time.Millisecond),
		found[cutSrv].Round(time.Millisecond), found[okSrv].Round(time.Millisecond), ep.backendsString())
	// discover.go promises every server behind a round-robin balancer
	// within about 4·n intervals (8 s here); a per-statement balancer
	// shows them to the first connection's polls, usually within a few.
	if discovery > 8*time.Second {
		t.Errorf("%s: both standbys found %v after walprobe started, want within 8 s (4·n intervals)", kind, discovery.Round(time.Millisecond))
	}
	if extra := ep.others(cutSrv, okSrv); len(extra) > 0 {
		t.Logf("%s: the endpoint also reached %v (not a standby)", kind, extra)
	}

	if err := c.CutReceiver(ctx, sb1); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	var notHealthy time.Duration
	maxLag := -1.0
	for time.Since(cut) < 10*time.Second {
		ep = endpointOf(t, w, name)
		if ep.State != "healthy" && notHealthy == 0 {
			notHealthy = time.Since(cut)
		}
		maxLag = max(maxLag, ep.lag())
		time.Sleep(250 * time.Millisecond)
	}
	ep = endpointOf(t, w, name)
	code, body := w.get(t, "/v1/targets/"+name+"/ready?max_lag=1s")
	t.Logf("%s: 10 s into the cut: state %s, lag %.3f s (max seen %.3f s), not healthy %v after the cut, ready?max_lag=1s %d; backends %s",
		kind, ep.State, ep.lag(), max(maxLag, ep.lag()), notHealthy.Round(time.Millisecond), code, ep.backendsString())
	if ep.lag() < 9 {
		t.Errorf("%s: endpoint lag %.3f s 10 s into standby1's cut, want >= 9 s", kind, ep.lag())
	}
	if ep.State == "healthy" {
		t.Errorf("%s: endpoint healthy 10 s into standby1's cut", kind)
	}
	if code != 503 {
		t.Errorf("%s: ready?max_lag=1s = %d %s during the cut, want 503", kind, code, body)
	}
	switch b := ep.backend(cutSrv); {
	case b == nil:
		t.Errorf("%s: backends %s lack the cut standby1 (%s)", kind, ep.backendsString(), cutSrv)
	case b.lag() < 9 || b.State == "healthy":
		t.Errorf("%s: cut standby1's backend %s is %s with lag %.3f s, want not healthy, >= 9 s", kind, cutSrv, b.State, b.lag())
	case len(ep.Backends) > 0 && ep.Backends[0].Server != cutSrv:
		t.Errorf("%s: backends %s do not list the cut standby1 (%s) first", kind, ep.backendsString(), cutSrv)
	}
	if b := ep.backend(okSrv); b == nil || b.State != "healthy" || b.lag() < 0 || b.lag() >= 2 {
		t.Errorf("%s: standby2's backend %s = %+v during standby1's cut, want healthy, lag < 2 s", kind, okSrv, b)
	}

	if err := c.RestoreReceiver(ctx, sb1); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	waitFor(t, 30*time.Second, "the endpoint and both backends healthy after the restore", func() bool {
		ep = endpointOf(t, w, name)
		b1, b2 := ep.backend(cutSrv), ep.backend(okSrv)
		return ep.State == "healthy" && b1 != nil && b1.State == "healthy" && b2 != nil && b2.State == "healthy"
	})
	t.Logf("%s: healthy %v after the restore; backends %s", kind, time.Since(restored).Round(time.Millisecond), ep.backendsString())
	if strings.Contains(w.Logs(), c.Password) {
		t.Errorf("%s: walprobe's logs carry the canary password", kind)
	}
}

// endpointState is an endpoint target in /v1/state.
type endpointState struct {
	State    string         `json:"state"`
	Lag      *float64       `json:"lag_seconds"`
	Backends []backendState `json:"backends"`
}

type backendState struct {
	Server  string   `json:"server"`
	State   string   `json:"state"`
	Lag     *float64 `json:"lag_seconds"`
	LastSeq *int64   `json:"last_seen_seq"`
	Recent  bool     `json:"recent"`
}

func (b *backendState) lag() float64 {
	if b.Lag == nil {
		return -1
	}
	return *b.Lag
}

func (e endpointState) lag() float64 {
	if e.Lag == nil {
		return -1
	}
	return *e.Lag
}

func (e endpointState) backend(server string) *backendState {
	for i := range e.Backends {
		if e.Backends[i].Server == server {
			return &e.Backends[i]
		}
	}
	return nil
}

// others lists the backends that are neither of servers.
func (e endpointState) others(servers ...string) []string {
	var out []string
	for _, b := range e.Backends {
		if !slices.Contains(servers, b.Server) {
			out = append(out, b.Server)
		}
	}
	return out
}

func (e endpointState) backendsString() string {
	parts := make([]string, 0, len(e.Backends))
	for _, b := range e.Backends {
		parts = append(parts, fmt.Sprintf("%s %s lag %.3f", b.Server, b.State, b.lag()))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// endpointOf reads the target name from /v1/state.
func endpointOf(t *testing.T, w *binProbe, name string) endpointState {
	t.Helper()
	_, b := w.get(t, "/v1/state")
	var st struct {
		Targets []struct {
			Name string `json:"name"`
			endpointState
		} `json:"targets"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("/v1/state: %v: %s", err, b)
	}
	for _, tg := range st.Targets {
		if tg.Name == name {
			return tg.endpointState
		}
	}
	t.Fatalf("/v1/state has no target %q: %s", name, b)
	return endpointState{}
}

// daemonPath returns bin or fails the test naming the Debian package.
func daemonPath(t *testing.T, bin, pkg string) string {
	t.Helper()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found: the endpoint tests need it; install it with `apt-get install -y %s` (or `bash .ci/install-deps`)", bin, pkg)
	}
	return bin
}

// daemonDir makes a directory the daemon's user owns: pgbouncer (and
// PostgreSQL) refuse to run as root, so a root test runs them as the
// postgres OS user, like test/cluster does.
func daemonDir(t *testing.T) (string, *syscall.Credential) {
	t.Helper()
	dir, err := os.MkdirTemp("", "walprobe-endpoint-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() != 0 {
		return dir, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root, pgbouncer and pgpool run as the postgres OS user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// writeOwned writes a file in a daemonDir that its user can read.
func writeOwned(t *testing.T, cred *syscall.Credential, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}

// daemon is a pooler running in the foreground until the test ends.
type daemon struct {
	name string
	mu   sync.Mutex // guards log
	log  strings.Builder
}

func (d *daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// startDaemon runs bin args as cred in the foreground, keeps its output,
// and stops it with stop (then SIGKILL) when the test ends, printing its
// output if the test failed.
func startDaemon(t *testing.T, name string, cred *syscall.Credential, stop syscall.Signal, bin string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: name}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(stop)
		done := make(chan struct{})
		go func() { <-drained; _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, d.Log())
		}
	})
	return d
}

// viaPort is dsn with its port replaced.
func viaPort(s *cluster.Server, user string, port int) string {
	return strings.Replace(s.DSN(user), fmt.Sprintf("port=%d", s.Port), fmt.Sprintf("port=%d", port), 1)
}

// waitAnswers waits until a query through dsn works, failing the test with
// d's output if it does not within 20 s.
func waitAnswers(t *testing.T, d *daemon, dsn string) {
	t.Helper()
	var last error
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		conn, err := pgx.Connect(ctx, dsn+" default_query_exec_mode=simple_protocol")
		if err == nil {
			_, err = conn.Exec(ctx, "SELECT 1")
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no query through %s within 20 s: %v\n%s", d.name, last, d.Log())
}

// freePortOn returns a TCP port free on every one of hosts right now.
func freePortOn(t *testing.T, hosts ...string) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", hosts[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		free := true
		var others []net.Listener
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			others = append(others, l)
		}
		ln.Close()
		for _, l := range others {
			l.Close()
		}
		if free {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", hosts)
	return 0
}

// haproxyTCPDefaults: long client and server timeouts, so pooled server
// connections that sit idle between polls are not cut under a pooler.
const haproxyTCPDefaults = `global
    log stderr format raw local0 info

defaults
    mode tcp
    log global
    timeout connect 2s
    timeout client 10m
    timeout server 10m
`

// startPgBouncerHostList puts both standbys behind one pgbouncer database
// entry, host=127.0.0.2,127.0.0.3 with one port: pgbouncer 1.18 takes a
// single port for every host, so HAProxy listens on that port on each
// loopback address and forwards to one standby each. server_round_robin
// makes pgbouncer hand out its server connections in turn instead of
// reusing the most recent one, and the pool is warmed by four concurrent
// clients (as an application would) so it holds connections to both.
// Authentication: userlist.txt holds walprobe's plain password, so
// pgbouncer checks the client's SCRAM exchange and logs in to the servers
// with SCRAM (as cmd/localcluster's pgbouncer does).
func startPgBouncerHostList(t *testing.T, c *cluster.Cluster, bin string) string {
	t.Helper()
	sb1, sb2 := c.Standbys[0], c.Standbys[1]
	port := freePortOn(t, "127.0.0.2", "127.0.0.3")
	startHAProxy(t, haproxyTCPDefaults+fmt.Sprintf(`
listen standby1
    bind 127.0.0.2:%[1]d
    server standby1 127.0.0.1:%[2]d
listen standby2
    bind 127.0.0.3:%[1]d
    server standby2 127.0.0.1:%[3]d
`, port, sb1.Port, sb2.Port))

	dir, cred := daemonDir(t)
	listen := haproxyFreePort(t)
	userlist := filepath.Join(dir, "userlist.txt")
	writeOwned(t, cred, userlist, fmt.Sprintf("\"walprobe\" \"%s\"\n", c.Password))
	ini := filepath.Join(dir, "pgbouncer.ini")
	writeOwned(t, cred, ini, fmt.Sprintf(`[databases]
postgres = host=127.0.0.2,127.0.0.3 port=%d dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir = %s
pool_mode = transaction
server_round_robin = 1
auth_type = scram-sha-256
auth_file = %s
logfile = %s
max_client_conn = 100
default_pool_size = 10
ignore_startup_parameters = extra_float_digits
server_login_retry = 1
server_connect_timeout = 5
`, port, listen, dir, userlist, filepath.Join(dir, "pgbouncer.log")))
	d := startDaemon(t, "pgbouncer", cred, syscall.SIGTERM, bin, ini)
	dsn := viaPort(sb1, "walprobe", listen)
	waitAnswers(t, d, dsn)

	// Warm the pool: four clients, each a 50 ms statement at a time for a
	// second, need four server connections at once.
	cfg, err := pgx.ParseConfig(dsn + " default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				if _, err := conn.Exec(ctx, "SELECT pg_sleep(0.05)"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("warming pgbouncer's pool: %v", err)
	}
	servers := answeredBy(t, d, dsn)
	t.Logf("pgbouncer's pool after warming: %v", servers)
	return dsn
}

// answeredBy runs ten statements on one connection through d and counts
// the ports of the servers that answered them.
func answeredBy(t *testing.T, d *daemon, dsn string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn+" default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatalf("connect through %s: %v\n%s", d.name, err, d.Log())
	}
	defer conn.Close(ctx)
	got := map[string]int{}
	for range 10 {
		var port string
		if err := conn.QueryRow(ctx, "SELECT current_setting('port')").Scan(&port); err != nil {
			t.Fatalf("query through %s: %v\n%s", d.name, err, d.Log())
		}
		got[port]++
	}
	return got
}

// startPgpool runs pgpool-II (Debian pgpool2, 4.3) in streaming
// replication mode with the primary as backend 0 (weight 0: it takes no
// load-balanced reads) and the two standbys, load_balance_mode and
// statement_level_load_balance on, so each statement picks a standby.
// Health and streaming-replication checks are off: pgpool must keep
// sending reads to the cut standby, as it would with its delay check off
// (the default for a pgpool that does not know what lag is acceptable).
//
// Authentication: the cluster uses scram-sha-256 over TCP. With
// enable_pool_hba = off, pgpool 4.3 runs the SCRAM exchange itself with
// the client and with each backend, which needs the user's password: it
// is in pool_passwd as `walprobe:TEXT<password>` (a plain-text entry,
// readable only by pgpool's user). The same entry lets pgpool's
// primary-node detection log in as walprobe (sr_check_user).
func startPgpool(t *testing.T, c *cluster.Cluster, bin string) string {
	t.Helper()
	dir, cred := daemonDir(t)
	listen := haproxyFreePort(t)
	writeOwned(t, cred, filepath.Join(dir, "pool_passwd"), "walprobe:TEXT"+c.Password+"\n")
	writeOwned(t, cred, filepath.Join(dir, "pcp.conf"), "")
	writeOwned(t, cred, filepath.Join(dir, "pool_hba.conf"), "")
	var backends strings.Builder
	for i, s := range append([]*cluster.Server{c.Primary}, c.Standbys...) {
		weight := 1
		if i == 0 {
			weight = 0
		}
		fmt.Fprintf(&backends, "backend_hostname%[1]d = '127.0.0.1'\nbackend_port%[1]d = %[2]d\nbackend_weight%[1]d = %[3]d\nbackend_flag%[1]d = 'DISALLOW_TO_FAILOVER'\nbackend_application_name%[1]d = '%[4]s'\n",
			i, s.Port, weight, s.Name)
	}
	conf := filepath.Join(dir, "pgpool.conf")
	writeOwned(t, cred, conf, fmt.Sprintf(`backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = %[1]d
unix_socket_directories = '%[2]s'
pcp_listen_addresses = ''
pcp_socket_dir = '%[2]s'
pid_file_name = '%[2]s/pgpool.pid'
logdir = '%[2]s'
log_destination = 'stderr'
logging_collector = off
%[3]s
load_balance_mode = on
statement_level_load_balance = on
enable_pool_hba = off
pool_passwd = 'pool_passwd'
sr_check_period = 0
sr_check_user = 'walprobe'
sr_check_password = ''
health_check_period = 0
failover_on_backend_error = off
use_watchdog = off
memory_cache_enabled = off
num_init_children = 8
max_pool = 2
`, listen, dir, backends.String()))
	d := startDaemon(t, "pgpool", cred, syscall.SIGINT, bin, "-n", "-f", conf, "-F", filepath.Join(dir, "pcp.conf"), "-a", filepath.Join(dir, "pool_hba.conf"))
	dsn := viaPort(c.Standbys[0], "walprobe", listen)
	waitAnswers(t, d, dsn)
	t.Logf("pgpool's answers to ten statements on one connection: %v", answeredBy(t, d, dsn))
	return dsn
}

// startHAProxyRoundRobin puts HAProxy in TCP mode with round-robin
// balancing in front of both standbys: each connection lands on one.
func startHAProxyRoundRobin(t *testing.T, c *cluster.Cluster) string {
	t.Helper()
	listen := haproxyFreePort(t)
	startHAProxy(t, haproxyTCPDefaults+fmt.Sprintf(`
listen reads
    bind 127.0.0.1:%d
    balance roundrobin
    server standby1 127.0.0.1:%d
    server standby2 127.0.0.1:%d
`, listen, c.Standbys[0].Port, c.Standbys[1].Port))
	return viaPort(c.Standbys[0], "walprobe", listen)
}
