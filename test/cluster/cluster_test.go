package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// beater upserts the test's heartbeat row on the primary as the walprobe
// role, as the probe would.
type beater struct {
	c   *Cluster
	seq int
}

// beat writes the next seq and returns it with the time just before the
// statement was sent.
func (b *beater) beat(ctx context.Context, t *testing.T) (int, time.Time) {
	t.Helper()
	b.seq++
	conn, err := b.c.Primary.Connect(ctx, "walprobe")
	if err != nil {
		t.Fatalf("beat %d: %v", b.seq, err)
	}
	defer conn.Close(ctx)
	sent := time.Now()
	_, err = conn.Exec(ctx, `INSERT INTO walprobe.heartbeat (probe_id, seq, written_at) VALUES ('cluster_test', $1, now())
ON CONFLICT (probe_id) DO UPDATE SET seq = excluded.seq, written_at = excluded.written_at`, b.seq)
	if err != nil {
		t.Fatalf("beat %d: %v", b.seq, err)
	}
	return b.seq, sent
}

// seen returns the newest seq s shows, read as walprobe.
func seen(ctx context.Context, s *Server) (int, error) {
	conn, err := s.Connect(ctx, "walprobe")
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var seq int
	err = conn.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM walprobe.heartbeat WHERE probe_id = 'cluster_test'").Scan(&seq)
	return seq, err
}

// waitSeen waits until s shows seq and returns when it first did.
func waitSeen(ctx context.Context, t *testing.T, s *Server, seq int) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		got, err := seen(ctx, s)
		if err == nil && got >= seq {
			return time.Now()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never showed seq %d (last %d, err %v)", s.Name, seq, got, err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// neverSeen checks that s does not show seq for d.
func neverSeen(ctx context.Context, t *testing.T, s *Server, seq int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		got, err := seen(ctx, s)
		if err != nil {
			t.Fatalf("read %s: %v", s.Name, err)
		}
		if got >= seq {
			t.Fatalf("%s shows seq %d, want it held back", s.Name, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func scalar(ctx context.Context, t *testing.T, s *Server, sql string, args ...any) string {
	t.Helper()
	got, err := s.Scalar(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return got
}

// TestCluster brings up the full set once and walks through every fault
// helper in order; later steps rely on the state earlier ones leave.
func TestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := StartT(t, Options{Standbys: 2, Subscriber: true, PgBouncer: true})
	t.Logf("bring-up: %v", c.StartupTime)
	if c.StartupTime > 20*time.Second {
		t.Errorf("bring-up took %v, want well under 20s", c.StartupTime)
	}
	s1, s2, sub := c.Standbys[0], c.Standbys[1], c.Subscriber
	b := &beater{c: c}

	t.Run("roles", func(t *testing.T) {
		tests := []struct {
			give string
			want string
		}{
			{give: "SELECT rolsuper FROM pg_roles WHERE rolname = 'walprobe'", want: "f"},
			{give: "SELECT rolreplication FROM pg_roles WHERE rolname = 'walprobe'", want: "t"},
			{give: "SELECT pg_has_role('walprobe', 'pg_monitor', 'member')", want: "t"},
			{give: "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'walprobe_heartbeat'", want: "1"},
			{give: "SHOW wal_level", want: "logical"},
			{give: "SHOW fsync", want: "off"},
		}
		for _, tt := range tests {
			if got := scalar(ctx, t, c.Primary, tt.give); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.give, got, tt.want)
			}
		}
		for _, s := range c.Standbys {
			if got := scalar(ctx, t, c.Primary, "SELECT state FROM pg_stat_replication WHERE application_name = $1", s.Name); got != "streaming" {
				t.Errorf("%s state %q, want streaming", s.Name, got)
			}
		}
	})

	t.Run("replicates", func(t *testing.T) {
		seq, _ := b.beat(ctx, t)
		for _, s := range []*Server{s1, s2, sub} {
			waitSeen(ctx, t, s, seq)
		}
		if got := scalar(ctx, t, s1, "SELECT pg_is_in_recovery()"); got != "t" {
			t.Errorf("standby1 pg_is_in_recovery() = %q, want t", got)
		}
	})

	t.Run("pgbouncer", func(t *testing.T) {
		// Exec mode: pgbouncer 1.18 cannot follow named prepared statements
		// across transactions, which pgx's default statement cache uses.
		cfg, err := pgx.ParseConfig(c.PgBouncer.DSN("walprobe"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("connect through pgbouncer: %v", err)
		}
		defer conn.Close(ctx)
		for i := range 3 {
			var inRecovery bool
			var seq int
			err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), coalesce(max(seq), 0) FROM walprobe.heartbeat WHERE probe_id = $1", "cluster_test").Scan(&inRecovery, &seq)
			if err != nil {
				t.Fatalf("query %d through pgbouncer: %v", i, err)
			}
			if !inRecovery || seq < 1 {
				t.Errorf("through pgbouncer: in recovery %v, seq %d; want the standby with seq >= 1", inRecovery, seq)
			}
		}
		// Transaction pooling: a second client shares the first one's
		// server connection between transactions, and gets another one
		// while the first holds a transaction open.
		conn2, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("connect through pgbouncer: %v", err)
		}
		defer conn2.Close(ctx)
		pid1, pid2 := backendPID(ctx, t, conn), backendPID(ctx, t, conn2)
		if pid1 != pid2 {
			t.Errorf("idle clients on backends %d and %d, want one shared backend", pid1, pid2)
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pid1, pid2 = backendPID(ctx, t, tx), backendPID(ctx, t, conn2)
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if pid1 == pid2 {
			t.Errorf("client 2 on backend %d while client 1 holds it in a transaction", pid2)
		}

		admin, err := pgx.Connect(ctx, strings.Replace(c.PgBouncer.DSN("postgres"), "dbname=postgres", "dbname=pgbouncer", 1))
		if err != nil {
			t.Fatalf("connect to pgbouncer console: %v", err)
		}
		defer admin.Close(ctx)
		rows, err := admin.Query(ctx, "SHOW CONFIG", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		var mode string
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			if vals[0] == "pool_mode" {
				mode, _ = vals[1].(string)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if mode != "transaction" {
			t.Errorf("pgbouncer pool_mode %q, want transaction", mode)
		}
	})

	t.Run("CutReceiver", func(t *testing.T) {
		if err := c.CutReceiver(ctx, s1); err != nil {
			t.Fatal(err)
		}
		if got := scalar(ctx, t, s1, "SELECT count(*) FROM pg_stat_wal_receiver"); got != "0" {
			t.Errorf("pg_stat_wal_receiver rows %s, want 0", got)
		}
		seq, _ := b.beat(ctx, t)
		waitSeen(ctx, t, s2, seq)
		neverSeen(ctx, t, s1, seq, time.Second)
		if err := c.RestoreReceiver(ctx, s1); err != nil {
			t.Fatal(err)
		}
		waitSeen(ctx, t, s1, seq)
		seq, _ = b.beat(ctx, t)
		waitSeen(ctx, t, s1, seq)
	})

	t.Run("PauseReplay", func(t *testing.T) {
		if err := c.PauseReplay(ctx, s1); err != nil {
			t.Fatal(err)
		}
		seq, _ := b.beat(ctx, t)
		waitSeen(ctx, t, s2, seq)
		neverSeen(ctx, t, s1, seq, time.Second)
		if got := scalar(ctx, t, s1, "SELECT status FROM pg_stat_wal_receiver"); got != "streaming" {
			t.Errorf("paused standby's receiver %q, want streaming", got)
		}
		if err := c.ResumeReplay(ctx, s1); err != nil {
			t.Fatal(err)
		}
		waitSeen(ctx, t, s1, seq)
	})

	t.Run("SetApplyDelay", func(t *testing.T) {
		if err := c.SetApplyDelay(ctx, s2, time.Second); err != nil {
			t.Fatal(err)
		}
		seq, sent := b.beat(ctx, t)
		waitSeen(ctx, t, s1, seq)
		visible := waitSeen(ctx, t, s2, seq).Sub(sent)
		t.Logf("with 1s apply delay, visible after %v", visible)
		if visible < time.Second {
			t.Errorf("visible after %v, want >= 1s", visible)
		}
		if err := c.SetApplyDelay(ctx, s2, 0); err != nil {
			t.Fatal(err)
		}
		seq, sent = b.beat(ctx, t)
		visible = waitSeen(ctx, t, s2, seq).Sub(sent)
		t.Logf("without delay, visible after %v", visible)
		if visible >= time.Second {
			t.Errorf("visible after %v with the delay off, want < 1s", visible)
		}
	})

	t.Run("Subscription", func(t *testing.T) {
		if err := c.DisableSubscription(ctx); err != nil {
			t.Fatal(err)
		}
		seq, _ := b.beat(ctx, t)
		waitSeen(ctx, t, s1, seq)
		neverSeen(ctx, t, sub, seq, time.Second)
		if err := c.EnableSubscription(ctx); err != nil {
			t.Fatal(err)
		}
		waitSeen(ctx, t, sub, seq)
	})

	t.Run("StopStart", func(t *testing.T) {
		pid := s2.PID()
		if err := s2.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if s2.Running() || processAlive(pid) {
			t.Fatalf("standby2 (pid %d) still running after Stop", pid)
		}
		if _, err := seen(ctx, s2); err == nil {
			t.Fatal("query on stopped standby2 succeeded")
		}
		seq, _ := b.beat(ctx, t)
		if err := s2.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitSeen(ctx, t, s2, seq)

		if err := c.Primary.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		seq, _ = b.beat(ctx, t)
		for _, s := range []*Server{s1, s2, sub} {
			waitSeen(ctx, t, s, seq)
		}
		if err := c.PgBouncer.Restart(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Promote", func(t *testing.T) {
		if err := c.Promote(ctx, s2); err != nil {
			t.Fatal(err)
		}
		if got := scalar(ctx, t, s2, "SELECT pg_is_in_recovery()"); got != "f" {
			t.Errorf("promoted standby2 pg_is_in_recovery() = %q, want f", got)
		}
		if got := scalar(ctx, t, s1, "SELECT pg_is_in_recovery()"); got != "t" {
			t.Errorf("standby1 pg_is_in_recovery() = %q, want t", got)
		}
	})

	t.Run("no canary in logs", func(t *testing.T) {
		paths := []string{c.PgBouncer.LogPath}
		for _, s := range c.Servers() {
			paths = append(paths, s.LogPath)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), c.Password) {
				t.Errorf("%s contains the canary password", p)
			}
		}
	})

	parent := t
	t.Run("Close", func(t *testing.T) {
		if parent.Failed() {
			// StartT's cleanup would find the logs removed.
			t.Logf("cluster logs:\n%s", c.LogTails(40))
		}
		var pids []int
		for _, s := range c.Servers() {
			pids = append(pids, s.PID())
		}
		pids = append(pids, c.PgBouncer.PID())
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		for _, pid := range pids {
			// The process group too: no backend outlives its postmaster.
			if pid == 0 || processAlive(pid) || processAlive(-pid) {
				t.Errorf("pid %d: still running after Close (or was never running)", pid)
			}
		}
		if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Close: %v", c.Dir, err)
		}
	})
}

func backendPID(ctx context.Context, t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) int {
	t.Helper()
	var pid int
	if err := q.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// processAlive reports whether pid (or, negative, a process group) exists.
func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func TestStartMissingBinaries(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name string
		give Options
		want []string
	}{
		{
			name: "server",
			give: Options{BinDir: empty},
			want: []string{
				"initdb not found at " + filepath.Join(empty, "initdb"),
				`"apt-get install -y postgresql-15"`,
				"WALPROBE_PG_BINDIR",
			},
		},
		{
			name: "pg_basebackup",
			give: Options{BinDir: empty, Standbys: 1},
			want: []string{"pg_basebackup not found at " + filepath.Join(empty, "pg_basebackup")},
		},
		{
			name: "pgbouncer",
			give: Options{Standbys: 1, PgBouncer: true, PgBouncerBin: filepath.Join(empty, "pgbouncer")},
			want: []string{
				"pgbouncer not found at " + filepath.Join(empty, "pgbouncer"),
				`"apt-get install -y pgbouncer"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Start(context.Background(), tt.give)
			if err == nil {
				c.Close()
				t.Fatal("Start succeeded, want a missing binary error")
			}
			var mb *MissingBinaryError
			if !errors.As(err, &mb) {
				t.Errorf("error %v is not a *MissingBinaryError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestStartFailureTearsDown checks that a server failing to start is
// reported with its log and that nothing is left running.
func TestStartFailureTearsDown(t *testing.T) {
	var dir string
	c, err := Start(context.Background(), Options{
		ExtraConf: []string{"walprobe_no_such_setting = 1"},
	})
	if err == nil {
		dir = c.Dir
		c.Close()
		t.Fatalf("Start succeeded with a bad setting (dir %s)", dir)
	}
	if !strings.Contains(err.Error(), "walprobe_no_such_setting") {
		t.Errorf("error %q does not quote the server log naming the bad setting", err)
	}
}

// helperEnv makes the test binary a child that starts a cluster, prints
// "ready <dir> <postmaster pid>" and waits to be signalled.
const helperEnv = "WALPROBE_CLUSTER_HELPER"

func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		return // only runs as the child of TestSignalCleansUp
	}
	c := StartT(t, Options{})
	fmt.Printf("ready %s %d\n", c.Dir, c.Primary.PID())
	time.Sleep(time.Minute)
}

// TestSignalCleansUp kills a test process that holds a cluster: SIGINT
// must close it (no process, no directory); SIGKILL, which nothing can
// catch, must still take the servers down through their parent-death
// signal.
func TestSignalCleansUp(t *testing.T) {
	tests := []struct {
		give    syscall.Signal
		wantDir bool // SIGKILL leaves the directory; the test removes it
	}{
		{give: syscall.SIGINT, wantDir: false},
		{give: syscall.SIGKILL, wantDir: true},
	}
	for _, tt := range tests {
		t.Run(tt.give.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
			cmd.Env = append(os.Environ(), helperEnv+"=1")
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var dir string
			var pid int
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if _, err := fmt.Sscanf(sc.Text(), "ready %s %d", &dir, &pid); err == nil {
					break
				}
			}
			if pid == 0 {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("helper never reported a cluster: %v", sc.Err())
			}
			if err := cmd.Process.Signal(tt.give); err != nil {
				t.Fatal(err)
			}
			// Read to EOF before Wait, as StdoutPipe requires.
			if _, err := io.Copy(io.Discard, out); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			t.Logf("helper exited: %v", err)
			defer os.RemoveAll(dir)
			deadline := time.Now().Add(10 * time.Second)
			for processAlive(-pid) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if processAlive(-pid) {
				t.Errorf("postmaster group %d alive after the helper got %v", pid, tt.give)
			}
			_, err = os.Stat(dir)
			if gotDir := err == nil; gotDir != tt.wantDir {
				t.Errorf("after %v, %s exists %v, want %v", tt.give, dir, gotDir, tt.wantDir)
			}
		})
	}
}
