package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/launch"
)

// TestPrimarySide covers what walprobe does to the primary: the table
// stays bounded, a role without rights gets the SQL to run, and the
// binary leaves no replication slot behind even when killed.
func TestPrimarySide(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{})

	t.Run("table_stays_bounded", func(t *testing.T) {
		conn, err := c.Primary.Connect(ctx, "walprobe")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		for i := range 10000 {
			if _, err := conn.Exec(ctx, heartbeat.UpsertSQL, "bounded"); err != nil {
				t.Fatalf("beat %d: %v", i, err)
			}
		}
		var pages int64
		var seq int64
		if err := conn.QueryRow(ctx, "SELECT pg_relation_size('walprobe.heartbeat') / current_setting('block_size')::int").Scan(&pages); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "SELECT seq FROM walprobe.heartbeat WHERE probe_id = 'bounded'").Scan(&seq); err != nil {
			t.Fatal(err)
		}
		t.Logf("after %d beats the heap is %d page(s)", seq, pages)
		if seq != 10000 {
			t.Errorf("seq = %d after 10000 upserts, want 10000", seq)
		}
		if pages > 2 {
			t.Errorf("heap is %d pages after 10,000 beats, want <= 2", pages)
		}
	})

	t.Run("not_set_up_prints_sql", func(t *testing.T) {
		if err := c.Primary.Exec(ctx, "CREATE DATABASE empty"); err != nil {
			t.Fatal(err)
		}
		dsn := strings.Replace(c.Primary.DSN("walprobe"), "dbname=postgres", "dbname=empty", 1)
		cfg, err := pgconf.Parse("primary", dsn)
		if err != nil {
			t.Fatal(err)
		}
		err = heartbeat.Check(ctx, cfg)
		if !errors.Is(err, heartbeat.ErrNotSetUp) {
			t.Fatalf("Check on a database without the table = %v, want ErrNotSetUp", err)
		}
		for _, want := range []string{"CREATE SCHEMA IF NOT EXISTS walprobe;", "CREATE TABLE IF NOT EXISTS walprobe.heartbeat", `GRANT SELECT, INSERT, UPDATE ON walprobe.heartbeat TO "walprobe";`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not carry %q:\n%s", want, err)
			}
		}
		if strings.Contains(err.Error(), c.Password) {
			t.Errorf("error carries the password")
		}
		// With --fail-fast the binary exits 2 with the same SQL (without,
		// the writer is down with it: test/faults TestStartupErrors).
		out, code := runBinary(t, "run", "--fail-fast", "--primary", dsn, "--no-stream", "--listen", "127.0.0.1:0")
		if code != 2 || !strings.Contains(out, "CREATE TABLE IF NOT EXISTS walprobe.heartbeat") {
			t.Errorf("walprobe run exit %d, output:\n%s", code, out)
		}
		if strings.Contains(out, c.Password) {
			t.Errorf("output carries the password")
		}
	})

	t.Run("setup_applies_then_run_works", func(t *testing.T) {
		if err := c.Primary.Exec(ctx, "CREATE DATABASE fresh"); err != nil {
			t.Fatal(err)
		}
		admin := strings.Replace(c.Primary.SuperDSN(), "dbname=postgres", "dbname=fresh", 1)
		out, code := runBinary(t, "setup", "--primary", admin, "--role", "walprobe")
		if code != 0 {
			t.Fatalf("walprobe setup: exit %d\n%s", code, out)
		}
		out, code = runBinary(t, "setup", "--primary", admin, "--role", "walprobe") // idempotent
		if code != 0 {
			t.Fatalf("second walprobe setup: exit %d\n%s", code, out)
		}
		cfg, err := pgconf.Parse("primary", strings.Replace(c.Primary.DSN("walprobe"), "dbname=postgres", "dbname=fresh", 1))
		if err != nil {
			t.Fatal(err)
		}
		if err := heartbeat.Check(ctx, cfg); err != nil {
			t.Fatalf("Check after setup: %v", err)
		}
		if strings.Contains(out, c.Password) {
			t.Errorf("setup output carries the password")
		}
		sql, code := runBinary(t, "setup", "--print-sql", "--role", "walprobe")
		if code != 0 || !strings.Contains(sql, "CREATE PUBLICATION walprobe_heartbeat FOR TABLE walprobe.heartbeat") {
			t.Errorf("setup --print-sql: exit %d\n%s", code, sql)
		}
	})

	t.Run("standby_not_in_recovery", func(t *testing.T) {
		out, code := runBinary(t, "run", "--fail-fast", "--primary", c.Primary.DSN("walprobe"), "--standby", "notastandby="+c.Primary.DSN("walprobe"), "--no-stream", "--listen", "127.0.0.1:0")
		if code != 2 || !strings.Contains(out, "notastandby") || !strings.Contains(out, "not in recovery") {
			t.Errorf("walprobe run with a primary as --standby: exit %d, output:\n%s", code, out)
		}
		if strings.Contains(out, c.Password) {
			t.Errorf("output carries the password")
		}
	})

	t.Run("no_slot_left_after_sigkill", func(t *testing.T) {
		w := startBin(t, nil, "--primary", c.Primary.DSN("walprobe"), "--interval", "200ms", "--probe-id", "killme")
		slots := func() string {
			v, err := c.Primary.Scalar(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'walprobe%'")
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		fakes.WaitFor(t.Context(), t, 15*time.Second, "the stream's slot", func() bool { return slots() == "1" })
		if err := w.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-w.Done()
		killed := time.Now()
		fakes.WaitFor(t.Context(), t, 5*time.Second, "no walprobe slot after SIGKILL", func() bool { return slots() == "0" })
		t.Logf("slot gone %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	})
}

// runBinary runs walprobe with a deadline and returns its combined output
// and exit code.
func runBinary(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := launch.Command(ctx, t, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}
