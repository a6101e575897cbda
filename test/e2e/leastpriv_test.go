package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/launch"
)

// TestLeastPrivilegeAndJSON runs the binary as a role with only the
// grants `walprobe setup --role` prints (no pg_monitor, no superuser) and
// --json: every target is timed, one JSON line arrives per beat per
// target, and the primary watcher names the missing pg_monitor grant
// instead of pretending pg_stat_replication is empty.
func TestLeastPrivilegeAndJSON(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	pw := c.Password
	for _, sql := range []string{
		"CREATE ROLE minimal LOGIN REPLICATION PASSWORD '" + pw + "'",
		"GRANT USAGE ON SCHEMA walprobe TO minimal",
		"GRANT SELECT, INSERT, UPDATE ON walprobe.heartbeat TO minimal",
	} {
		if err := c.Primary.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	fakes.WaitFor(t.Context(), t, 10*time.Second, "the role on the standby", func() bool {
		v, _ := c.Standbys[0].Scalar(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = 'minimal'")
		return v == "1"
	})

	t.Run("hidden_classic_named", func(t *testing.T) {
		cfg, err := pgconf.Parse("primary", c.Primary.DSN("minimal"))
		if err != nil {
			t.Fatal(err)
		}
		p := probe.New(probe.Config{ProbeID: "minimal", Interval: 200 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		w := probe.NewPrimaryWatcher(cfg, p, slog.New(slog.NewTextHandler(io.Discard, nil)))
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(wctx) }()
		defer func() { cancel(); wg.Wait() }()
		fakes.WaitFor(t.Context(), t, 10*time.Second, "the primary's classic view", func() bool { return p.Snapshot().Primary.Classic != nil })
		cl := p.Snapshot().Primary.Classic
		if !strings.Contains(cl.Hidden, "GRANT pg_monitor TO") || len(cl.Replication) != 0 {
			t.Errorf("without pg_monitor: hidden %q, %d rows; want the grant named and no half-empty rows", cl.Hidden, len(cl.Replication))
		}
	})

	t.Run("json_lines", func(t *testing.T) {
		cmd := launch.Command(t.Context(), t, "run", "--primary", c.Primary.DSN("minimal"),
			"--standby", "standby1="+c.Standbys[0].DSN("minimal"), "--json",
			"--interval", "200ms", "--listen", "127.0.0.1:0", "--probe-id", "jsonprobe")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr syncBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		perTarget := map[string]int{}
		sc := bufio.NewScanner(stdout)
		deadline := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
		defer deadline.Stop()
		for sc.Scan() && (perTarget["standby1"] < 10 || perTarget["stream"] < 10) {
			var line struct {
				Target string   `json:"target"`
				Seq    int64    `json:"seq"`
				Delay  *float64 `json:"delay_seconds"`
				Bound  *float64 `json:"error_bound_seconds"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
			}
			if line.Seq == 0 || line.Delay == nil || line.Bound == nil {
				t.Errorf("incomplete line %q", sc.Text())
			}
			perTarget[line.Target]++
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if perTarget["standby1"] < 10 || perTarget["stream"] < 10 {
			t.Errorf("JSON lines per target %v, want >= 10 for standby1 and stream (non-superuser with REPLICATION)\n%s", perTarget, stderr.String())
		}
		if strings.Contains(stderr.String(), pw) {
			t.Error("logs carry the password")
		}
		if !strings.Contains(stderr.String(), "pg_monitor") {
			t.Errorf("the missing pg_monitor grant was not mentioned in the logs:\n%s", stderr.String())
		}
	})
}
