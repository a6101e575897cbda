package e2e

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/launch"
)

// TestSetupProgress: `walprobe setup` against a real primary prints one
// progress line per server and step on stderr, then how long it took;
// stdout stays empty, and no line carries the password.
func TestSetupProgress(t *testing.T) {
	c := cluster.StartT(t, cluster.Options{})
	if err := c.Primary.Exec(t.Context(), "CREATE ROLE probe_progress LOGIN"); err != nil {
		t.Fatal(err)
	}
	cmd := launch.Command(t.Context(), t, "setup", "--primary", c.Primary.SuperDSN(), "--role", "probe_progress")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("walprobe setup: %v\n%s", err, stderr.String())
	}
	out := stderr.String()
	if !regexp.MustCompile(`(?m)^setup: connecting to 127\.0\.0\.1:\d+/postgres as postgres$`).MatchString(out) {
		t.Errorf("no connecting line:\n%s", out)
	}
	steps := regexp.MustCompile(`(?m)^primary +\S.* ok$`).FindAllString(out, -1)
	if len(steps) < 4 {
		t.Errorf("want a line per step ending in ok, got %d step lines:\n%s", len(steps), out)
	}
	if !regexp.MustCompile(`(?m)^setup done: \d+ steps in \S+$`).MatchString(out) {
		t.Errorf("no done line:\n%s", out)
	}
	if stdout.Len() != 0 {
		t.Errorf("setup wrote to stdout:\n%s", stdout.String())
	}
	if strings.Contains(out, c.Password) {
		t.Error("setup progress carries the canary password")
	}
}

// TestDemoProgress: the demo's bring-up reports each step (initdb, base
// backup, subscription, pgbouncer) on stderr and keeps stdout for the
// table.
func TestDemoProgress(t *testing.T) {
	cmd := launch.Command(t.Context(), t, "demo", "--listen", "127.0.0.1:0", "--interval", "200ms", "--duration", "3s")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("walprobe demo --duration 3s: %v\nstderr:\n%s", err, tail(stderr.String()))
	}
	t.Logf("demo with a 3 s run took %v", time.Since(start).Round(time.Millisecond))
	errOut := stderr.String()
	for _, want := range []string{
		"walprobe demo: starting a throwaway primary",
		"primary: initdb",
		"subscriber: initdb",
		"standby1: base backup from primary",
		"subscriber: create subscription",
		"subscriber synced",
		"cluster up in",
		"walprobe demo: checking the primary and targets",
		"walprobe demo: stopping servers and removing",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("demo stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(stdout.String(), "initdb") {
		t.Errorf("progress lines on stdout, which the table owns:\n%s", tail(stdout.String()))
	}
	if !strings.Contains(stdout.String(), "walprobe demo   primary") {
		t.Errorf("no table on stdout:\n%s", tail(stdout.String()))
	}
}
