package e2e

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
)

// haproxyAgentConfig weights two standbys by walprobe's agent check: the
// server lines carry the lines deploy/haproxy/walprobe-agent.cfg shows.
const haproxyAgentConfig = `global
    log stderr format raw local0 info
    stats socket %[1]s level admin

defaults
    mode tcp
    log global
    option log-health-checks
    timeout connect 2s
    timeout client 1m
    timeout server 1m
    timeout check 1s

frontend pg_reads
    bind 127.0.0.1:%[2]d
    default_backend standbys

backend standbys
    balance leastconn
    default-server weight 100 inter 1s agent-inter 200ms agent-addr 127.0.0.1 agent-port %[3]d
%[4]s`

// agentServerLine is one server of haproxyAgentConfig.
const agentServerLine = `    server %[1]s 127.0.0.1:%[2]d check agent-check agent-send "%[1]s\n"` + "\n"

// serverStat is one server's row of HAProxy's "show stat".
type serverStat struct {
	status string
	weight int
}

// haproxyStats asks the stats socket for "show stat" and returns the
// servers of backend by name.
func haproxyStats(t *testing.T, socket, backend string) map[string]serverStat {
	t.Helper()
	conn, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		t.Fatalf("haproxy stats socket: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("show stat\n")); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		b.WriteString(strings.TrimPrefix(sc.Text(), "# ") + "\n")
	}
	r := csv.NewReader(strings.NewReader(b.String()))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("show stat: %v\n%s", err, b.String())
	}
	col := func(name string) int {
		i := slices.Index(rows[0], name)
		if i < 0 {
			t.Fatalf("show stat has no %s column: %v", name, rows[0])
		}
		return i
	}
	px, sv, st, wt := col("pxname"), col("svname"), col("status"), col("weight")
	out := map[string]serverStat{}
	for _, row := range rows[1:] {
		if len(row) <= wt || row[px] != backend || row[sv] == "BACKEND" {
			continue
		}
		w, _ := strconv.Atoi(row[wt])
		out[row[sv]] = serverStat{status: row[st], weight: w}
	}
	return out
}

// TestHAProxyAgentWeights runs a real HAProxy whose agent checks ask
// walprobe (--agent-listen) for each standby's weight: both start at 100;
// a standby delayed by 2 s (--agent-max-lag 4s) gets a weight strictly
// between 1 and 100; cut off, it is drained; restored, it is back at 100,
// while the other standby stays at 100 throughout.
func TestHAProxyAgentWeights(t *testing.T) {
	haproxyPath(t)
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 2})
	sb1, sb2 := c.Standbys[0], c.Standbys[1]
	agentPort := haproxyFreePort(t)
	w := runProbeBinary(t, "--primary", c.Primary.DSN("walprobe"),
		"--standby", "standby1="+sb1.DSN("walprobe"),
		"--standby", "standby2="+sb2.DSN("walprobe"),
		"--interval", "200ms", "--probe-id", "agent", "--no-stream",
		"--agent-listen", fmt.Sprintf("127.0.0.1:%d", agentPort), "--agent-max-lag", "4s")
	waitFor(t, 20*time.Second, "both standbys healthy", func() bool {
		s1, _ := w.targetState(t, "standby1")
		s2, _ := w.targetState(t, "standby2")
		return s1 == "healthy" && s2 == "healthy"
	})
	socket := filepath.Join(t.TempDir(), "admin.sock")
	var servers strings.Builder
	for _, sb := range []*cluster.Server{sb1, sb2} {
		fmt.Fprintf(&servers, agentServerLine, sb.Name, sb.Port)
	}
	hp := startHAProxy(t, fmt.Sprintf(haproxyAgentConfig, socket, haproxyFreePort(t), agentPort, servers.String()))
	stats := func() map[string]serverStat { return haproxyStats(t, socket, "standbys") }
	var got map[string]serverStat
	waitFor(t, 15*time.Second, "both standbys UP at weight 100", func() bool {
		if _, err := os.Stat(socket); err != nil {
			return false
		}
		got = stats()
		return got["standby1"] == serverStat{"UP", 100} && got["standby2"] == serverStat{"UP", 100}
	})
	other := func() {
		t.Helper()
		if s := got["standby2"]; s != (serverStat{"UP", 100}) {
			t.Errorf("standby2 (untouched) is %+v, want UP at 100", s)
		}
	}

	if err := c.SetApplyDelay(ctx, sb1, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	var weights []int
	waitFor(t, 15*time.Second, "standby1 weighted below 100 while delayed 2 s", func() bool {
		got = stats()
		s := got["standby1"]
		weights = append(weights, s.weight)
		return s.status == "UP" && s.weight > 1 && s.weight < 100
	})
	t.Logf("delayed 2 s (agent max lag 4 s): standby1 %+v", got["standby1"])
	other()

	if err := c.CutReceiver(ctx, sb1); err != nil {
		t.Fatal(err)
	}
	// HAProxy shows a drained server as "DRAIN (agent)", keeping the last
	// weight in the column: drain is an administrative state.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = stats()
		if strings.HasPrefix(got["standby1"].status, "DRAIN") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby1 not drained 15 s after the cut: %+v", got)
		}
	}
	if !strings.Contains(hp.Log(), "standbys/standby1 enters drain state") {
		t.Errorf("haproxy did not log standby1 entering drain state:\n%s", hp.Log())
	}
	t.Logf("cut off: standby1 %+v", got["standby1"])
	other()

	if err := c.SetApplyDelay(ctx, sb1, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.RestoreReceiver(ctx, sb1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "standby1 UP at weight 100 after restore", func() bool {
		got = stats()
		return got["standby1"] == serverStat{"UP", 100}
	})
	other()
	if !strings.Contains(hp.Log(), "standbys/standby1") {
		t.Errorf("haproxy logged no agent check result for standby1:\n%s", hp.Log())
	}
	if strings.Contains(w.Logs(), c.Password) || strings.Contains(hp.Log(), c.Password) {
		t.Error("walprobe or haproxy logs carry the canary password")
	}
}

// TestHAProxyAgentExampleConfig: deploy/haproxy/walprobe-agent.cfg is valid
// for the installed haproxy and carries the agent lines the test runs.
func TestHAProxyAgentExampleConfig(t *testing.T) {
	bin := haproxyPath(t)
	path := filepath.Join("..", "..", "deploy", "haproxy", "walprobe-agent.cfg")
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", path, err, out)
	}
	example, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"weight 100", "agent-port ", `check agent-check agent-send "standby1\n"`} {
		if !strings.Contains(string(example), want) {
			t.Errorf("%s lacks %q, which the tested config uses", path, want)
		}
	}
}
