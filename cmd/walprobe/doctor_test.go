package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/walprobe/walprobe/test/cluster"
)

// doctorRow finds the row for server and check in doctor's table and
// returns its mark and detail.
func doctorRow(out, server, check string) (mark, detail string, ok bool) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != server {
			continue
		}
		rest := strings.TrimSpace(strings.TrimPrefix(line, server))
		if !strings.HasPrefix(rest, check) {
			continue
		}
		rest = strings.TrimSpace(strings.TrimPrefix(rest, check))
		mark, detail, _ = strings.Cut(rest, "  ")
		return mark, strings.TrimSpace(detail), true
	}
	return "", "", false
}

// TestDoctor runs walprobe doctor against a cluster set up as run needs
// it (exit 0, every check ✓ or optional), then with a misconfigured one
// (exit 1, each problem ✗ with its fix) (issue 16.6).
func TestDoctor(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1, Subscriber: true})
	good := []string{"doctor", "--primary", c.Primary.DSN("walprobe"),
		"--standby", "replica1=" + c.Standbys[0].DSN("walprobe"),
		"--subscriber", "sub1=" + c.Subscriber.DSN("walprobe")}

	t.Run("good", func(t *testing.T) {
		code, stdout, stderr := runT(t, good...)
		if code != 0 {
			t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, r := range []struct{ server, check string }{
			{"primary", "reachable"}, {"primary", "read-write (not in recovery)"}, {"primary", "heartbeat table"},
			{"primary", "role and grants"}, {"primary", "publication (stream)"}, {"primary", "wal_level (stream)"},
			{"primary", "free replication slot (stream)"}, {"primary", "free WAL sender (stream)"},
			{"primary", "REPLICATION (stream)"}, {"primary", "pg_monitor (classic numbers)"},
			{"replica1", "recovery state"}, {"replica1", "role and grants"}, {"replica1", "heartbeat table"},
			{"sub1", "recovery state"}, {"sub1", "role and grants"}, {"sub1", "subscription membership"},
		} {
			if mark, detail, ok := doctorRow(stdout, r.server, r.check); !ok || mark != "✓" {
				t.Errorf("%s %s: %q %q, want ✓\n%s", r.server, r.check, mark, detail, stdout)
			}
		}
		if mark, _, ok := doctorRow(stdout, "primary", "TLS"); !ok || mark != "–" {
			t.Errorf("TLS without TLS: %q, want – (optional)", mark)
		}
		assertNoSecret(t, "stdout", stdout, c.Password)
		t.Logf("\n%s", stdout)
	})

	t.Run("misconfigured", func(t *testing.T) {
		for _, sql := range []string{
			fmt.Sprintf("CREATE ROLE wp_doc LOGIN PASSWORD '%s'", c.Password),
			"GRANT USAGE ON SCHEMA walprobe TO wp_doc", "GRANT SELECT ON walprobe.heartbeat TO wp_doc",
		} {
			if err := c.Primary.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.DisableSubscription(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.EnableSubscription(ctx) })
		code, stdout, stderr := runT(t, "doctor", "--primary", c.Primary.DSN("wp_doc"),
			"--standby", "replica1="+c.Primary.DSN("walprobe"), // a primary as a standby
			"--subscriber", "sub1="+c.Subscriber.DSN("walprobe"),
			"--endpoint", "gone=host=127.0.0.1 port=1 user=walprobe dbname=postgres sslmode=disable connect_timeout=2")
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, r := range []struct{ server, check, fix string }{
			{"primary", "role and grants", `GRANT SELECT, INSERT, UPDATE ON walprobe.heartbeat TO "wp_doc"`},
			{"primary", "REPLICATION (stream)", `ALTER ROLE "wp_doc" REPLICATION`},
			{"replica1", "recovery state", "not in recovery, so it is not a standby"},
			{"sub1", "subscription membership", `ALTER SUBSCRIPTION "walprobe_sub" ENABLE`},
			{"gone", "reachable", "connection refused"},
		} {
			if mark, detail, ok := doctorRow(stdout, r.server, r.check); !ok || mark != "✗" || !strings.Contains(detail, r.fix) {
				t.Errorf("%s %s: %q %q, want ✗ saying %q\n%s", r.server, r.check, mark, detail, r.fix, stdout)
			}
		}
		if mark, _, _ := doctorRow(stdout, "primary", "pg_monitor (classic numbers)"); mark != "–" {
			t.Errorf("pg_monitor missing: %q, want – (optional)", mark)
		}
		assertNoSecret(t, "stdout", stdout, c.Password)
		t.Logf("\n%s", stdout)
	})
}
