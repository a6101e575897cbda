package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/launch"
)

// addHBAReject puts a reject line for role at the top of s's pg_hba.conf
// (the first matching line wins) and reloads.
func addHBAReject(ctx context.Context, t *testing.T, s *cluster.Server, role string) {
	t.Helper()
	path := filepath.Join(s.DataDir, "pg_hba.conf")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append([]byte("host all "+role+" 127.0.0.1/32 reject\n"), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	// The reload is asynchronous: wait until the server's view has it.
	if err := s.WaitScalar(ctx, "1", "SELECT count(*) FROM pg_hba_file_rules WHERE $1 = ANY(user_name) AND type = 'host'", role); err != nil {
		t.Fatal(err)
	}
}

// TestStartupErrors runs the binary with inputs only a real server can
// reject: pg_hba.conf, missing grants, a wrong password, a missing
// database, and a bad --password-file. Each is one actionable line on
// stderr, exit status 2, and no password anywhere.
func TestStartupErrors(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	pw := c.Password
	s1 := c.Standbys[0]
	for _, sql := range []string{
		// Every grant, but pg_hba.conf turns it away.
		"CREATE ROLE wp_hba LOGIN PASSWORD '" + pw + "'",
		"GRANT USAGE ON SCHEMA walprobe TO wp_hba",
		"GRANT SELECT, INSERT, UPDATE ON walprobe.heartbeat TO wp_hba",
		// A reader's grants only: may not write beats.
		"CREATE ROLE wp_ro LOGIN PASSWORD '" + pw + "'",
		"GRANT USAGE ON SCHEMA walprobe TO wp_ro",
		"GRANT SELECT ON walprobe.heartbeat TO wp_ro",
		// The schema but not the table: may not read beats.
		"CREATE ROLE wp_nosel LOGIN PASSWORD '" + pw + "'",
		"GRANT USAGE ON SCHEMA walprobe TO wp_nosel",
		// Nothing at all.
		"CREATE ROLE wp_none LOGIN PASSWORD '" + pw + "'",
	} {
		if err := c.Primary.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.WaitScalar(ctx, "4", "SELECT count(*) FROM pg_roles WHERE rolname IN ('wp_hba', 'wp_ro', 'wp_nosel', 'wp_none')"); err != nil {
		t.Fatal(err)
	}
	addHBAReject(ctx, t, c.Primary, "wp_hba")
	addHBAReject(ctx, t, s1, "wp_hba")

	const wrongPW = "wrong-canary-9d1e"
	dir := t.TempDir()
	writeFile := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask may have narrowed it
			t.Fatal(err)
		}
		return p
	}
	worldReadable := writeFile("world", pw+"\n", 0o644)
	emptyFile := writeFile("empty", "\n", 0o600)
	goodFile := writeFile("good", pw+"\n", 0o600)
	nopw := func(s *cluster.Server, user string) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable connect_timeout=5", s.Port, user)
	}
	primaryOK := c.Primary.DSN("walprobe")

	tests := []struct {
		name   string
		give   []string
		wantIn []string
	}{
		{
			name:   "primary rejected by pg_hba.conf",
			give:   []string{"--primary", c.Primary.DSN("wp_hba")},
			wantIn: []string{"primary (127.0.0.1:", "pg_hba.conf rejects connection", `add a pg_hba.conf entry for user "wp_hba"`},
		},
		{
			name:   "standby rejected by pg_hba.conf",
			give:   []string{"--primary", primaryOK, "--standby", "replica1=" + s1.DSN("wp_hba")},
			wantIn: []string{"replica1 (127.0.0.1:", "pg_hba.conf rejects connection", `add a pg_hba.conf entry for user "wp_hba"`},
		},
		{
			name:   "primary role without INSERT and UPDATE",
			give:   []string{"--primary", c.Primary.DSN("wp_ro")},
			wantIn: []string{`user "wp_ro" may not write walprobe.heartbeat`, "missing INSERT, UPDATE", `GRANT SELECT, INSERT, UPDATE ON walprobe.heartbeat TO "wp_ro"`},
		},
		{
			name:   "primary role without any grant",
			give:   []string{"--primary", c.Primary.DSN("wp_none")},
			wantIn: []string{`user "wp_none" may not write walprobe.heartbeat`, "USAGE on schema walprobe", `GRANT USAGE ON SCHEMA walprobe TO "wp_none"`},
		},
		{
			name:   "standby role without SELECT",
			give:   []string{"--primary", primaryOK, "--standby", "replica1=" + s1.DSN("wp_nosel")},
			wantIn: []string{"replica1 (127.0.0.1:", `user "wp_nosel" may not read walprobe.heartbeat`, `GRANT SELECT ON walprobe.heartbeat TO "wp_nosel"`},
		},
		{
			name:   "endpoint role without schema USAGE",
			give:   []string{"--primary", primaryOK, "--endpoint", "reader=" + s1.DSN("wp_none")},
			wantIn: []string{"reader (127.0.0.1:", `user "wp_none" may not read walprobe.heartbeat`, `GRANT USAGE ON SCHEMA walprobe TO "wp_none"`},
		},
		{
			name:   "wrong password on the primary",
			give:   []string{"--primary", strings.Replace(primaryOK, "password="+pw, "password="+wrongPW, 1)},
			wantIn: []string{`password authentication failed for user "walprobe"`, "check the password"},
		},
		{
			name:   "missing database on a standby",
			give:   []string{"--primary", primaryOK, "--standby", "replica1=" + strings.Replace(s1.DSN("walprobe"), "dbname=postgres", "dbname=no_such_db", 1)},
			wantIn: []string{"replica1 (127.0.0.1:", `"no_such_db" does not exist`, "fix dbname in the DSN"},
		},
		{
			name:   "world-readable --password-file",
			give:   []string{"--primary", nopw(c.Primary, "walprobe"), "--password-file", worldReadable},
			wantIn: []string{"--password-file " + worldReadable, "readable by group or others", "chmod 600"},
		},
		{
			name:   "missing --password-file",
			give:   []string{"--primary", nopw(c.Primary, "walprobe"), "--password-file", filepath.Join(dir, "nope")},
			wantIn: []string{"--password-file " + filepath.Join(dir, "nope"), "no such file"},
		},
		{
			name:   "empty --password-file",
			give:   []string{"--primary", nopw(c.Primary, "walprobe"), "--password-file", emptyFile},
			wantIn: []string{"--password-file " + emptyFile, "first line is empty"},
		},
		{
			// The file's password logs wp_ro in: what stops it is the
			// missing grant, not a missing password.
			name:   "--password-file password is used",
			give:   []string{"--primary", nopw(c.Primary, "wp_ro"), "--password-file", goodFile},
			wantIn: []string{`user "wp_ro" may not write walprobe.heartbeat`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
			defer cancel()
			args := append([]string{"run", "--no-stream", "--listen", "127.0.0.1:0", "--probe-id", "startup"}, tt.give...)
			cmd := launch.Command(ctx, t, args...)
			// No ambient password: only what each case gives.
			cmd.Env = append(os.Environ(), "PGPASSWORD=", "PGPASSFILE="+filepath.Join(dir, "no-passfile"))
			var stdout, stderr syncBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			begin := time.Now()
			err := cmd.Run()
			got := stderr.String()
			if code := launch.ExitCode(err); code != 2 {
				t.Errorf("exit status %d (%v) after %v, want 2\nstderr:\n%s", code, err, time.Since(begin).Round(time.Millisecond), got)
			}
			// Warnings logged before the error are fine; the error itself
			// is the last line, prefixed and alone.
			lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "walprobe: ") {
				t.Errorf("last stderr line %q does not start with %q", last, "walprobe: ")
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(last, w) {
					t.Errorf("the error line does not say %q:\n%s", w, last)
				}
			}
			for _, sec := range []string{pw, wrongPW} {
				if strings.Contains(got, sec) || strings.Contains(stdout.String(), sec) {
					t.Errorf("output carries a password:\n%s", redactAround(got, max(0, strings.Index(got, sec)), len(sec)))
				}
			}
			t.Logf("exit %d in %v: %s", launch.ExitCode(err), time.Since(begin).Round(time.Millisecond), last)
		})
	}
}
