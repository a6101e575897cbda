package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/walprobe/walprobe/probe"
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
