package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
)

// checkT parses `walprobe check args...` as main does and runs the check
// in-process, returning its exit status and stdout.
func checkT(ctx context.Context, t *testing.T, args ...string) (int, string) {
	t.Helper()
	var c cli
	var out, errb bytes.Buffer
	parser, err := kong.New(&c, kong.Name("walprobe"), kong.Writers(&out, &errb), kong.Exit(func(int) { t.Fatalf("kong exited: %s", errb.String()) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse(append([]string{"check"}, args...)); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	code := c.Check.check(ctx, streams{&out, &errb})
	return code, out.String()
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
		// least that old. None was written before the pause: it is at most
		// that old.
		least, most := secondStarted.Sub(firstEnded), time.Since(paused)
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

func TestCheckBadConfigIsUnknown(t *testing.T) {
	tests := []struct {
		name string
		give []string
	}{
		{"no_primary", []string{"--standby", "s=host=127.0.0.1 port=1"}},
		{"no_targets", []string{"--primary", okPrimary}},
		{"warning_over_critical", []string{"--primary", okPrimary, "--standby", "s=host=127.0.0.1 port=1", "--warning", "5s", "--critical", "1s"}},
		{"bad_target", []string{"--primary", okPrimary, "--standby", "nodsn"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := checkT(context.Background(), t, tt.give...)
			if code != statusUnknown || !strings.HasPrefix(out, "WALPROBE UNKNOWN - ") || strings.Count(out, "\n") != 1 {
				t.Errorf("exit %d, output %q, want one UNKNOWN line", code, out)
			}
			assertNoSecret(t, "output", out, canary)
		})
	}
}

// TestComposeInitSQL keeps deploy/compose/initdb in step with `walprobe
// setup --print-sql`: the compose primary and subscriber must be set up
// exactly as the command would set them up.
func TestComposeInitSQL(t *testing.T) {
	tests := []struct {
		give string // file under deploy/compose/initdb
		args []string
	}{
		{"primary/20-walprobe-setup.sql", []string{"setup", "--print-sql", "--role", "walprobe"}},
		{"subscriber/20-walprobe-setup.sql", []string{"setup", "--print-sql", "--role", "walprobe", "--subscriber-only"}},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			code, want, stderr := runT(t, tt.args...)
			if code != 0 {
				t.Fatalf("walprobe %s: exit %d: %s", strings.Join(tt.args, " "), code, stderr)
			}
			path := filepath.Join("..", "..", "deploy", "compose", "initdb", tt.give)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(got), want) {
				t.Errorf("%s does not contain the output of walprobe %s; regenerate it:\n  go run ./cmd/walprobe %s > %s\nwant:\n%s", path, strings.Join(tt.args, " "), strings.Join(tt.args, " "), path, want)
			}
		})
	}
}

func TestDelayOfBehind(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	lag := 1500 * time.Millisecond // this run's own beat, unshown for 1.5 s
	live := probe.TargetSnapshot{Name: "s", State: probe.StateLagging, Lag: &lag}
	last := row{seq: 40, written: ago(2 * time.Hour)}
	tests := []struct {
		name     string
		give     row // what the target shows
		wantOK   bool
		wantD    time.Duration
		wantHow  basis
		wantText string
	}{
		{"caught_up_before_run", row{seq: 40, written: ago(2 * time.Hour)}, false, 1500 * time.Millisecond, basisLag, ""},
		{"shows_later_seq", row{seq: 41, written: ago(time.Second)}, false, 1500 * time.Millisecond, basisLag, ""},
		{"one_beat_behind_is_exact", row{seq: 39, written: ago(3 * time.Hour)}, true, 2 * time.Hour, basisBehind, ""},
		{"many_beats_behind", row{seq: 10, written: ago(5 * time.Hour)}, true, 2 * time.Hour, basisAtLeast,
			"lag at least 7200.0000s, under 18000.0000s (shows beat 10, not 40; when 11 was written is not recorded)"},
		{"no_row", row{}, true, 2 * time.Hour, basisAtLeast,
			"lag at least 7200.0000s (shows no beat, not 40; when beat 1 was written is not recorded)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, ok := behindOf(last, tt.give)
			if ok != tt.wantOK {
				t.Fatalf("behindOf ok = %v, want %v", ok, tt.wantOK)
			}
			var bp *behind
			if ok {
				bp = &b
			}
			d, how, known := delayOf(live, bp, now)
			if d != tt.wantD || how != tt.wantHow || !known {
				t.Errorf("delayOf = %v, %v, %v; want %v, %v, true", d, how, known, tt.wantD, tt.wantHow)
			}
			if tt.wantText != "" {
				if got := atLeastText(d, b, now); got != tt.wantText {
					t.Errorf("text %q, want %q", got, tt.wantText)
				}
			}
		})
	}
}
