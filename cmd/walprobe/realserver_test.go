//go:build !unit

package main

// The tests here start PostgreSQL (test/cluster); `make unit` leaves them
// out with -tags unit and runs every other test in this package.

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/test/cluster"
)

// freePort returns a 127.0.0.1 port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return port
}

// TestRunRealServer checks what a user sees when --primary is wrong in
// ways only a real server reveals. An unreachable or refusing primary is a
// state the running probe reports, not an exit, so those cases call the
// check run() makes (heartbeat.Check, itself pgconf.Connect + Explain)
// rather than run(), which would keep running.
func TestRunRealServer(t *testing.T) {
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	pw := c.Password
	walprobeDSN := c.Primary.DSN("walprobe")

	t.Run("primary in recovery exits 2 with --fail-fast", func(t *testing.T) {
		code, stdout, stderr := runT(t, "run", "--fail-fast", "--primary", c.Standbys[0].DSN("walprobe"), "--no-stream", "--listen", "127.0.0.1:0")
		if code != 2 {
			t.Errorf("exit status %d, want 2\nstderr:\n%s", code, stderr)
		}
		for _, w := range []string{"in recovery", "point --primary at the read-write server"} {
			if !strings.Contains(stderr, w) {
				t.Errorf("stderr does not say %q:\n%s", w, stderr)
			}
		}
		if n := strings.Count(strings.TrimRight(stderr, "\n"), "\n"); n != 0 {
			t.Errorf("stderr has %d lines, want 1:\n%s", n+1, stderr)
		}
		assertNoSecret(t, "stdout", stdout, pw)
		assertNoSecret(t, "stderr", stderr, pw)
	})

	const wrongPW = "wrong-canary-7f3a"
	tests := []struct {
		name    string
		give    string
		wantIn  []string
		wantErr error // matched with errors.Is, when set
		code    string
	}{
		{
			name:   "unresolvable host",
			give:   "host=nonexistent.invalid port=5432 user=walprobe dbname=postgres sslmode=disable connect_timeout=5 password=" + pw,
			wantIn: []string{`cannot resolve host "nonexistent.invalid"`, "fix host in the DSN"},
		},
		{
			name:   "refused port",
			give:   "host=127.0.0.1 port=" + strconv.Itoa(freePort(t)) + " user=walprobe dbname=postgres sslmode=disable connect_timeout=5 password=" + pw,
			wantIn: []string{"connection refused", "listening on that port"},
		},
		{
			name:   "wrong password",
			give:   strings.Replace(walprobeDSN, "password="+pw, "password="+wrongPW, 1),
			wantIn: []string{`password authentication failed for user "walprobe"`, "check the password"},
			code:   "28P01",
		},
		{
			name:   "missing database",
			give:   strings.Replace(walprobeDSN, "dbname=postgres", "dbname=no_such_db", 1),
			wantIn: []string{`"no_such_db" does not exist`, "fix dbname in the DSN"},
			code:   "3D000",
		},
		{
			name:    "standby as primary",
			give:    c.Standbys[0].DSN("walprobe"),
			wantIn:  []string{"is in recovery", "point --primary at the read-write server"},
			wantErr: heartbeat.ErrInRecovery,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := pgconf.Parse("--primary", tt.give)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			err = heartbeat.Check(ctx, cfg)
			if err == nil {
				t.Fatal("Check succeeded, want an error")
			}
			got := err.Error()
			for _, w := range tt.wantIn {
				if !strings.Contains(got, w) {
					t.Errorf("error does not say %q:\n%s", w, got)
				}
			}
			if strings.Contains(got, "\n") {
				t.Errorf("error is not one line:\n%s", got)
			}
			assertNoSecret(t, "error", got, pw, wrongPW)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantErr)
			}
			if tt.wantErr == nil {
				// Connection failures are pgconf.Errors: run() treats them
				// as a state and keeps going.
				var pe *pgconf.Error
				if !errors.As(err, &pe) || pe.Target != "primary" {
					t.Errorf("error %T is not a *pgconf.Error for target primary", err)
				}
			}
			if tt.code != "" {
				if got := sqlState(err); got != tt.code {
					t.Errorf("SQLSTATE %q, want %q", got, tt.code)
				}
			}
		})
	}
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

var pluginLine = regexp.MustCompile(`^WALPROBE (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+( \| ('[a-z0-9_]+_delay'=(U|[0-9.]+s);[0-9.]+;[0-9.]+;0 ?)+)?\n$`)

func TestCheckRealServer(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 2})
	primary := c.Primary.DSN("walprobe")
	s1 := "standby1=" + c.Standbys[0].DSN("walprobe")
	s2 := "standby2=" + c.Standbys[1].DSN("walprobe")
	base := []string{"--primary", primary, "--interval", "200ms", "--probe-id", "checktest"}

	t.Run("ok", func(t *testing.T) {
		start := time.Now()
		code, out := checkT(ctx, t, append(base, "--standby", s1, "--standby", s2, "--warning", "2s", "--critical", "4s")...)
		t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), out)
		if code != statusOK || !strings.HasPrefix(out, "WALPROBE OK - ") || !pluginLine.MatchString(out) {
			t.Errorf("exit %d, output %q, want OK", code, out)
		}
		for _, want := range []string{"'standby1_delay'=", "'standby2_delay'=", ";2;4;0"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q: %s", want, out)
			}
		}
		assertNoSecret(t, "check output", out, c.Password)
	})

	t.Run("pgpool", func(t *testing.T) {
		code, out := checkT(ctx, t, append(base, "--standby", s1, "--standby", s2, "--standby", "gone=host=127.0.0.1 port=1 user=walprobe dbname=postgres", "--format", "pgpool")...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != statusOK || len(lines) != 3 || lines[2] != "-1" || !regexp.MustCompile(`^[0-9]+$`).MatchString(lines[0]) {
			t.Errorf("exit %d, output %q: want two delays in ms and -1 for the unreachable one", code, out)
		}
	})

	t.Run("down_is_critical", func(t *testing.T) {
		code, out := checkT(ctx, t, append(base, "--standby", s1, "--standby", "gone=host=127.0.0.1 port=1 user=walprobe dbname=postgres")...)
		if code != statusCritical || !strings.Contains(out, "gone down") || !strings.Contains(out, "'gone_delay'=U;") || !pluginLine.MatchString(out) {
			t.Errorf("exit %d, output %q, want CRITICAL naming gone", code, out)
		}
	})

	t.Run("apply_delay_over_critical", func(t *testing.T) {
		if err := c.SetApplyDelay(ctx, c.Standbys[1], time.Second); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.SetApplyDelay(ctx, c.Standbys[1], 0) }()
		code, out := checkT(ctx, t, append(base, "--standby", s1, "--standby", s2, "--warning", "200ms", "--critical", "500ms")...)
		t.Log(out)
		if code != statusCritical || !strings.HasPrefix(out, "WALPROBE CRITICAL - standby2") || !pluginLine.MatchString(out) {
			t.Errorf("exit %d, output %q, want CRITICAL for standby2", code, out)
		}
	})

	t.Run("receiver_cut", func(t *testing.T) {
		if err := c.CutReceiver(ctx, c.Standbys[0]); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := c.RestoreReceiver(ctx, c.Standbys[0]); err != nil {
				t.Error(err)
			}
		}()
		start := time.Now()
		code, out := checkT(ctx, t, append(base, "--standby", s1, "--critical", "2s", "--timeout", "8s")...)
		t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), out)
		if code != statusCritical || !strings.Contains(out, "standby1 showed no beat") {
			t.Errorf("exit %d, output %q, want CRITICAL: no beat shown", code, out)
		}
	})

	// pgpool runs the check every sr_check_period, so a standby that stops
	// replaying falls behind beats that earlier runs wrote. The delay it
	// prints must keep growing with the fault, not stop near --critical
	// (where the run stops waiting for its own beat).
	t.Run("replay_paused_past_critical", func(t *testing.T) {
		sb := c.Standbys[0]
		args := append(base, "--standby", s1, "--warning", "500ms", "--critical", "1s", "--timeout", "2s")
		beforeStart := time.Now()
		if code, out := checkT(ctx, t, args...); code != statusOK { // standby1 shows a beat
			t.Fatalf("exit %d, output %q before the pause, want OK", code, out)
		}
		if err := c.PauseReplay(ctx, sb); err != nil {
			t.Fatal(err)
		}
		paused := time.Now()
		defer func() {
			if err := c.ResumeReplay(ctx, sb); err != nil {
				t.Error(err)
			}
		}()
		pgpool := append(args[:len(args):len(args)], "--format", "pgpool")
		_, first := checkT(ctx, t, pgpool...) // beats standby1 never shows
		firstEnded := time.Now()
		time.Sleep(6 * time.Second)
		secondStarted := time.Now()
		code, out := checkT(ctx, t, pgpool...)
		// The first run's beats were all written before firstEnded and are
		// still not shown when the second run prints: the true delay is at
		// least that old. pgpool gets the upper bound, the age of the beat
		// standby1 shows, written by the run before the pause: at most as
		// old as that run.
		least, most := secondStarted.Sub(firstEnded), time.Since(beforeStart)
		t.Logf("paused %v ago: first run %q, second %q", most.Round(time.Millisecond), first, out)
		ms, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if code != statusOK || err != nil {
			t.Fatalf("exit %d, output %q: want one delay in ms", code, out)
		}
		if got := time.Duration(ms) * time.Millisecond; got < least || got > most {
			t.Errorf("pgpool delay %v, want within [%v, %v]: standby1 has not shown a beat written %v ago", got, least, most, least)
		}

		// Run right after another, the check knows only that standby1 has
		// not shown the previous run's beats: the plugin line says "at
		// least" that, and under the age of the beat standby1 shows.
		code, out = checkT(ctx, t, args...)
		most = time.Since(paused)
		t.Log(out)
		m := regexp.MustCompile(`'standby1_delay'=([0-9.]+)s;`).FindStringSubmatch(out)
		u := regexp.MustCompile(`behind: lag at least [0-9.]+s, under ([0-9.]+)s`).FindStringSubmatch(out)
		if code != statusCritical || !pluginLine.MatchString(out) || m == nil || u == nil {
			t.Fatalf("exit %d, output %q, want CRITICAL: standby1 behind: lag at least ..., under ...", code, out)
		}
		// At least --critical: the run waited that long for its own beat.
		if got, _ := strconv.ParseFloat(m[1], 64); got < 1 || got > most.Seconds() {
			t.Errorf("perfdata standby1_delay %vs, want within [1s, %v]", got, most)
		}
		if got, _ := strconv.ParseFloat(u[1], 64); got < 6 {
			t.Errorf("upper bound %vs, want >= 6s: standby1 shows a beat from before the pause", got)
		}
	})
}
