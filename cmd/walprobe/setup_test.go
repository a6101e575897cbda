package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/test/cluster"
)

// inDB is s's DSN for user in database db.
func inDB(s *cluster.Server, user, db string) string {
	return strings.Replace(s.DSN(user), "dbname=postgres", "dbname="+db, 1)
}

// execIn runs each statement as postgres in database db of s.
func execIn(ctx context.Context, t *testing.T, s *cluster.Server, db string, sqls ...string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, inDB(s, "postgres", db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s/%s: %v", s.Name, db, err)
		}
	}
}

func scalarIn(ctx context.Context, t *testing.T, s *cluster.Server, db, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, inDB(s, "postgres", db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		t.Fatalf("%s/%s: %v", s.Name, db, err)
	}
	return v
}

// appTopology makes database app on the primary and the subscriber of c
// with the user's own publication app_pub and subscription app_sub, and
// no walprobe objects: what an operator has before walprobe.
func appTopology(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	t.Helper()
	execIn(ctx, t, c.Primary, "postgres", "CREATE DATABASE app")
	execIn(ctx, t, c.Subscriber, "postgres", "CREATE DATABASE app")
	execIn(ctx, t, c.Primary, "app", "CREATE TABLE public.app_t (id int PRIMARY KEY)", "CREATE PUBLICATION app_pub FOR TABLE public.app_t")
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres passfile=%s dbname=app", c.Primary.Port, filepath.Join(c.Dir, "pgpass"))
	execIn(ctx, t, c.Subscriber, "app", "CREATE TABLE public.app_t (id int PRIMARY KEY)",
		fmt.Sprintf("CREATE SUBSCRIPTION app_sub CONNECTION '%s' PUBLICATION app_pub", conninfo))
}

// TestSetupTopology: one setup prepares the primary and a subscriber
// (issue 16.5): table, publication and grants on the primary; table and
// grants on the subscriber; the table added to the publication the
// subscription uses, the subscription refreshed, the table synchronised.
// It is idempotent: a second run, and one with --user-publication, pass.
func TestSetupTopology(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Subscriber: true})
	appTopology(ctx, t, c)
	args := []string{"setup", "--primary", inDB(c.Primary, "postgres", "app"), "--subscriber", "sub1=" + inDB(c.Subscriber, "postgres", "app"), "--role", "walprobe", "--sync-timeout", "30s"}
	for i, extra := range [][]string{nil, nil, {"--user-publication", "app_pub"}} {
		code, stdout, stderr := runT(t, append(args, extra...)...)
		if code != 0 {
			t.Fatalf("run %d: exit %d\nstdout:\n%s\nstderr:\n%s", i+1, code, stdout, stderr)
		}
		for _, w := range []string{
			"primary      create table walprobe.heartbeat",
			"primary      create publication walprobe_heartbeat",
			`primary      add walprobe.heartbeat to publication "app_pub"`,
			`sub1         refresh subscription "app_sub"`,
			`sub1         wait until walprobe.heartbeat is synchronised in "app_sub"`,
		} {
			if !strings.Contains(stderr, w) {
				t.Errorf("run %d: no line %q:\n%s", i+1, w, stderr)
			}
		}
		if strings.Contains(stderr, "FAILED") {
			t.Errorf("run %d: a step failed:\n%s", i+1, stderr)
		}
		if stdout != "" {
			t.Errorf("run %d: setup wrote to stdout:\n%s", i+1, stdout)
		}
		assertNoSecret(t, "stdout", stdout, c.Password)
		assertNoSecret(t, "stderr", stderr, c.Password)
		t.Logf("run %d:\n%s", i+1, stderr)
	}
	if got := scalarIn(ctx, t, c.Subscriber, "app", "SELECT srsubstate::text FROM pg_subscription_rel WHERE srrelid = 'walprobe.heartbeat'::regclass"); got != "r" {
		t.Errorf("srsubstate %q, want r", got)
	}
	// A beat written on the primary shows on the subscriber.
	execIn(ctx, t, c.Primary, "app", "INSERT INTO walprobe.heartbeat VALUES ('setup-test', 1, now())")
	deadline := time.Now().Add(10 * time.Second)
	for scalarIn(ctx, t, c.Subscriber, "app", "SELECT count(*)::text FROM walprobe.heartbeat WHERE probe_id = 'setup-test'") != "1" {
		if time.Now().After(deadline) {
			t.Fatal("the row written on the primary did not reach the subscriber")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := scalarIn(ctx, t, c.Primary, "app", "SELECT has_table_privilege('walprobe', 'walprobe.heartbeat', 'INSERT')::text"); got != "true" {
		t.Errorf("walprobe may not insert on the primary")
	}
	if got := scalarIn(ctx, t, c.Subscriber, "app", "SELECT has_table_privilege('walprobe', 'walprobe.heartbeat', 'SELECT')::text"); got != "true" {
		t.Errorf("walprobe may not read on the subscriber")
	}

	t.Run("run creates the publication when allowed", func(t *testing.T) {
		// A role that may create the schema owns the table it creates,
		// and so may publish it: the stream's publication comes with it.
		execIn(ctx, t, c.Primary, "postgres", "CREATE DATABASE own",
			fmt.Sprintf("CREATE ROLE wp_owner LOGIN PASSWORD '%s'", c.Password), "GRANT CREATE ON DATABASE own TO wp_owner")
		cfg, err := pgconf.Parse("primary", inDB(c.Primary, "wp_owner", "own"))
		if err != nil {
			t.Fatal(err)
		}
		if err := heartbeat.Check(ctx, cfg); err != nil {
			t.Fatalf("Check: %v", err)
		}
		if got := scalarIn(ctx, t, c.Primary, "own", "SELECT count(*)::text FROM pg_publication_tables WHERE pubname = 'walprobe_heartbeat' AND tablename = 'heartbeat'"); got != "1" {
			t.Errorf("publication walprobe_heartbeat with the table: %s, want 1", got)
		}
	})
}

// TestSetupPrintSQLPerServer: --print-sql names each server's SQL.
func TestSetupPrintSQLPerServer(t *testing.T) {
	code, stdout, stderr := runT(t, "setup", "--print-sql", "--role", "walprobe", "--user-publication", "app_pub", "--subscriber", "sub1=host=x")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"CREATE PUBLICATION walprobe_heartbeat", "-- On the primary, for subscriber sub1", `ALTER PUBLICATION "app_pub" ADD TABLE walprobe.heartbeat`, "-- On subscriber sub1:", "ALTER SUBSCRIPTION <subscription> REFRESH PUBLICATION"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("--print-sql does not say %q:\n%s", w, stdout)
		}
	}
}
