package faults

import (
	"context"
	"encoding/json"
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
// database, a server of the wrong role. Each is a down state at start-up
// (for the primary: writer down, /readyz 503) with one actionable reason
// in /v1/state, the log and the metrics, and the probe keeps running; with
// --fail-fast each is one line on stderr and exit status 2. Input wrong by
// itself (a bad --password-file) exits 2 either way. No password anywhere.
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

	// down says where a case's reason shows while the probe runs: the
	// primary (writer down) or a target by name; "" is input wrong by
	// itself, which exits 2 with or without --fail-fast.
	tests := []struct {
		name   string
		give   []string
		down   string
		wantIn []string
	}{
		{
			name:   "primary rejected by pg_hba.conf",
			down:   "primary",
			give:   []string{"--primary", c.Primary.DSN("wp_hba")},
			wantIn: []string{"primary (127.0.0.1:", "pg_hba.conf rejects connection", `add a pg_hba.conf entry for user "wp_hba"`},
		},
		{
			name:   "standby rejected by pg_hba.conf",
			down:   "replica1",
			give:   []string{"--primary", primaryOK, "--standby", "replica1=" + s1.DSN("wp_hba")},
			wantIn: []string{"replica1 (127.0.0.1:", "pg_hba.conf rejects connection", `add a pg_hba.conf entry for user "wp_hba"`},
		},
		{
			name:   "primary role without INSERT and UPDATE",
			down:   "primary",
			give:   []string{"--primary", c.Primary.DSN("wp_ro")},
			wantIn: []string{`user "wp_ro" may not write walprobe.heartbeat`, "missing INSERT, UPDATE", `GRANT SELECT, INSERT, UPDATE ON walprobe.heartbeat TO "wp_ro"`},
		},
		{
			name:   "primary role without any grant",
			down:   "primary",
			give:   []string{"--primary", c.Primary.DSN("wp_none")},
			wantIn: []string{`user "wp_none" may not write walprobe.heartbeat`, "USAGE on schema walprobe", `GRANT USAGE ON SCHEMA walprobe TO "wp_none"`},
		},
		{
			name:   "standby role without SELECT",
			down:   "replica1",
			give:   []string{"--primary", primaryOK, "--standby", "replica1=" + s1.DSN("wp_nosel")},
			wantIn: []string{"replica1 (127.0.0.1:", `user "wp_nosel" may not read walprobe.heartbeat`, `GRANT SELECT ON walprobe.heartbeat TO "wp_nosel"`},
		},
		{
			name:   "endpoint role without schema USAGE",
			down:   "reader",
			give:   []string{"--primary", primaryOK, "--endpoint", "reader=" + s1.DSN("wp_none")},
			wantIn: []string{"reader (127.0.0.1:", `user "wp_none" may not read walprobe.heartbeat`, `GRANT USAGE ON SCHEMA walprobe TO "wp_none"`},
		},
		{
			name:   "wrong password on the primary",
			down:   "primary",
			give:   []string{"--primary", strings.Replace(primaryOK, "password="+pw, "password="+wrongPW, 1)},
			wantIn: []string{`password authentication failed for user "walprobe"`, "check the password"},
		},
		{
			name:   "missing database on a standby",
			down:   "replica1",
			give:   []string{"--primary", primaryOK, "--standby", "replica1=" + strings.Replace(s1.DSN("walprobe"), "dbname=postgres", "dbname=no_such_db", 1)},
			wantIn: []string{"replica1 (127.0.0.1:", `"no_such_db" does not exist`, "fix dbname in the DSN"},
		},
		{
			name:   "standby given as --primary",
			give:   []string{"--primary", s1.DSN("walprobe")},
			down:   "primary",
			wantIn: []string{"primary (127.0.0.1:", "is in recovery", "point --primary at the read-write server"},
		},
		{
			name:   "primary given as --standby",
			give:   []string{"--primary", primaryOK, "--standby", "replica1=" + primaryOK},
			down:   "replica1",
			wantIn: []string{"replica1 (127.0.0.1:", "is not in recovery, so it is not a standby"},
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
			down:   "primary",
			give:   []string{"--primary", nopw(c.Primary, "wp_ro"), "--password-file", goodFile},
			wantIn: []string{`user "wp_ro" may not write walprobe.heartbeat`},
		},
	}
	env := []string{"PGPASSWORD=", "PGPASSFILE=" + filepath.Join(dir, "no-passfile")}
	secrets := []string{pw, wrongPW}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.down == "" {
				exitsWithLine(ctx, t, env, tt.give, tt.wantIn, secrets)
				return
			}
			t.Run("fail-fast", func(t *testing.T) {
				exitsWithLine(ctx, t, env, append([]string{"--fail-fast"}, tt.give...), tt.wantIn, secrets)
			})
			t.Run("down", func(t *testing.T) {
				reportsDown(t, env, tt.give, tt.down, tt.wantIn, secrets)
			})
		})
	}
}

// probeArgs are the arguments every start-up case runs with.
func probeArgs(give []string) []string {
	return append([]string{"run", "--no-stream", "--listen", "127.0.0.1:0", "--probe-id", "startup", "--interval", "200ms"}, give...)
}

// exitsWithLine runs walprobe with give and wants exit status 2 with one
// actionable line on stderr that says each of wantIn.
func exitsWithLine(ctx context.Context, t *testing.T, env, give, wantIn, secrets []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	cmd := launch.Command(ctx, t, probeArgs(give)...)
	// No ambient password: only what each case gives.
	cmd.Env = append(os.Environ(), env...)
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
	for _, w := range wantIn {
		if !strings.Contains(last, w) {
			t.Errorf("the error line does not say %q:\n%s", w, last)
		}
	}
	noSecrets(t, got+stdout.String(), secrets)
	t.Logf("exit %d in %v: %s", launch.ExitCode(err), time.Since(begin).Round(time.Millisecond), last)
}

// reportsDown runs walprobe with give and wants it to keep running with
// who (the primary or a target) down, the reason saying each of wantIn in
// /v1/state and the log, and the state in the metrics.
func reportsDown(t *testing.T, env, give []string, who string, wantIn, secrets []string) {
	t.Helper()
	w := startWalprobe(t, env, probeArgs(give)...)
	var st state
	var body, reason string
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := w.get("/v1/state")
		if err == nil && json.Unmarshal([]byte(b), &st) == nil {
			body = b
			if who == "primary" {
				reason = st.Primary.Error
				if st.Primary.Up {
					reason = ""
				}
			} else if ts, ok := st.target(who); ok && ts.State == "down" {
				reason = ts.LastError
				if ts.Lag != nil {
					t.Errorf("%s is down with lag_seconds %v, want null", who, *ts.Lag)
				}
			}
		}
		if containsAll(reason, wantIn) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !containsAll(reason, wantIn) {
		t.Fatalf("%s: reason %q does not say %q\n/v1/state: %s\nstderr:\n%s", who, reason, wantIn, body, w.Logs())
	}
	if !w.Running() {
		t.Fatalf("walprobe exited (%v):\n%s", w.Err(), w.Logs())
	}
	// The text log quotes values: a quote in the reason is \" there.
	if last := wantIn[len(wantIn)-1]; !strings.Contains(w.Logs(), strings.ReplaceAll(last, `"`, `\"`)) {
		t.Errorf("the log does not say %q:\n%s", wantIn[len(wantIn)-1], w.Logs())
	}
	metrics, _ := w.get("/metrics")
	if who == "primary" {
		if _, err := w.get("/readyz"); err == nil || !strings.Contains(err.Error(), "status 503") {
			t.Errorf("/readyz with the writer down: %v, want status 503", err)
		}
	} else if want := fmt.Sprintf(`state="down",target=%q} 1`, who); !strings.Contains(metrics, want) {
		t.Errorf("/metrics has no %s", want)
	}
	noSecrets(t, body+metrics+w.Logs()+w.stdout(), secrets)
	t.Logf("%s down: %s", who, reason)
}

func containsAll(s string, subs []string) bool {
	for _, w := range subs {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return s != ""
}

func noSecrets(t *testing.T, got string, secrets []string) {
	t.Helper()
	for _, sec := range secrets {
		if i := strings.Index(got, sec); i >= 0 {
			t.Errorf("output carries a password:\n%s", redactAround(got, i, len(sec)))
		}
	}
}
