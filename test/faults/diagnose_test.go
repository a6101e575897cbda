package faults

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
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
			t.Fatalf("%s on %s/%s: %v", firstWords(sql), s.Name, db, err)
		}
	}
}

func firstWords(sql string) string {
	if len(sql) > 60 {
		return sql[:60] + "…"
	}
	return sql
}

// targetSpec is one reader runTargets starts.
type targetSpecT struct {
	name string
	kind probe.Kind
	dsn  string
}

// runTargets runs a writer on primaryDSN and a reader per target, in
// process, until the test ends.
func runTargets(ctx context.Context, t *testing.T, id, primaryDSN string, targets ...targetSpecT) *probe.Probe {
	t.Helper()
	const interval = 200 * time.Millisecond
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	p := probe.New(probe.Config{ProbeID: id, Interval: interval}, logger)
	pcfg, err := pgconf.Parse("primary", primaryDSN)
	if err != nil {
		t.Fatal(err)
	}
	w, err := heartbeat.NewWriter(heartbeat.WriterConfig{Conn: pcfg, ProbeID: id, Interval: interval,
		OnBeat: p.Beat, OnMiss: p.Missed, OnConn: p.WriterConn}, logger)
	if err != nil {
		t.Fatal(err)
	}
	runs := []func(context.Context) error{w.Run, p.Run}
	for _, tg := range targets {
		cfg, err := pgconf.Parse(tg.name, tg.dsn)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := probe.NewReader(probe.ReaderConfig{Name: tg.name, Kind: tg.kind, Conn: cfg, ProbeID: id, Interval: interval}, p, logger)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, rd.Run)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(rctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return p
}

// targetWatch samples one target's snapshot every 50 ms.
type targetWatch struct {
	mu   sync.Mutex
	seen []probe.TargetSnapshot
}

func watchTarget(ctx context.Context, t *testing.T, p *probe.Probe, name string) *targetWatch {
	w := &targetWatch{}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wctx.Err() == nil {
			for _, ts := range p.Snapshot().Targets {
				if ts.Name == name {
					w.mu.Lock()
					w.seen = append(w.seen, ts)
					w.mu.Unlock()
				}
			}
			select {
			case <-wctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *targetWatch) latest() probe.TargetSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) == 0 {
		return probe.TargetSnapshot{}
	}
	return w.seen[len(w.seen)-1]
}

func (w *targetWatch) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

func (w *targetWatch) since(i int) []probe.TargetSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]probe.TargetSnapshot(nil), w.seen[i:]...)
}

// waitFor waits until cond holds for the latest snapshot.
func (w *targetWatch) waitFor(t *testing.T, d time.Duration, what string, cond func(probe.TargetSnapshot) bool) probe.TargetSnapshot {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ts := w.latest(); ts.Name != "" && cond(ts) {
			return ts
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts := w.latest()
	t.Fatalf("%s: not within %v; last: state %s, reason %q, last_error %q, lag %v", what, d, ts.State, ts.StateReason, ts.LastError, ts.Lag)
	return ts
}

// downFor is a condition: the target is down, its reason says each of
// want, and its lag is unknown.
func downFor(want ...string) func(probe.TargetSnapshot) bool {
	return func(ts probe.TargetSnapshot) bool {
		return ts.State == probe.StateDown && ts.Lag == nil && containsAll(ts.StateReason, want) && containsAll(ts.LastError, want)
	}
}

// TestSubscriberSaysWhy walks a subscriber database through every reason
// it can show no beats (issue 16.4): the heartbeat table missing, no
// subscription, the table in no subscription, the table not synchronised
// (a copy that fails), each down with the SQL to run and lag null, and
// never a lag; then measured; then a disabled subscription and a failing
// apply worker, which are real lag with the reason naming the cause.
func TestSubscriberSaysWhy(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Subscriber: true})
	sub := c.Subscriber
	execIn(ctx, t, sub, "postgres", "CREATE DATABASE app")
	execIn(ctx, t, c.Primary, "postgres", "CREATE TABLE public.app_t (id int PRIMARY KEY)", "CREATE PUBLICATION app_pub FOR TABLE public.app_t")

	p := runTargets(ctx, t, "diagsub", c.Primary.SuperDSN(), targetSpecT{"sub1", probe.KindSubscriber, inDB(sub, "walprobe", "app")})
	w := watchTarget(ctx, t, p, "sub1")

	w.waitFor(t, 10*time.Second, "table missing", downFor("subscriber sub1 has no walprobe.heartbeat", "--subscriber sub1=ADMIN_DSN"))

	execIn(ctx, t, sub, "app", append(heartbeat.SetupSQL(heartbeat.SetupOptions{Role: "walprobe"}),
		"CREATE TABLE public.app_t (id int PRIMARY KEY)",
		// A column the primary does not send, NOT NULL: the table's
		// initial copy fails until it is dropped.
		"ALTER TABLE walprobe.heartbeat ADD COLUMN extra int NOT NULL")...)
	w.waitFor(t, 10*time.Second, "no subscription", downFor(`no subscription in database "app"`, "CREATE SUBSCRIPTION"))

	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres passfile=%s dbname=postgres", c.Primary.Port, filepath.Join(c.Dir, "pgpass"))
	execIn(ctx, t, sub, "app", fmt.Sprintf("CREATE SUBSCRIPTION app_sub CONNECTION '%s' PUBLICATION app_pub", conninfo))
	w.waitFor(t, 10*time.Second, "table in no subscription", downFor("walprobe.heartbeat is in no subscription on subscriber sub1",
		`ALTER PUBLICATION "app_pub" ADD TABLE walprobe.heartbeat`, `ALTER SUBSCRIPTION "app_sub" REFRESH PUBLICATION`))

	execIn(ctx, t, c.Primary, "postgres", "ALTER PUBLICATION app_pub ADD TABLE walprobe.heartbeat")
	execIn(ctx, t, sub, "app", "ALTER SUBSCRIPTION app_sub REFRESH PUBLICATION")
	w.waitFor(t, 15*time.Second, "table not synchronised", downFor(`walprobe.heartbeat is not synchronised yet in subscription "app_sub"`, "pg_subscription_rel"))

	mark := w.mark()
	execIn(ctx, t, sub, "app", "ALTER TABLE walprobe.heartbeat DROP COLUMN extra")
	ts := w.waitFor(t, 30*time.Second, "measured once synchronised", func(ts probe.TargetSnapshot) bool {
		return ts.State == probe.StateHealthy && ts.BeatsTimed > 0
	})
	if ts.LastError != "" {
		t.Errorf("healthy with last_error %q", ts.LastError)
	}
	for _, s := range w.since(mark) {
		if s.State == probe.StateLagging || s.State == probe.StateStalled {
			t.Errorf("state %s while it could not be measured (reason %q)", s.State, s.StateReason)
			break
		}
	}

	execIn(ctx, t, sub, "app", "ALTER SUBSCRIPTION app_sub DISABLE")
	ts = w.waitFor(t, 15*time.Second, "disabled subscription is lag with its cause", func(ts probe.TargetSnapshot) bool {
		return (ts.State == probe.StateLagging || ts.State == probe.StateStalled) && ts.Lag != nil &&
			strings.Contains(ts.StateReason, `subscription "app_sub" is disabled: ALTER SUBSCRIPTION "app_sub" ENABLE`)
	})
	t.Logf("disabled: %s, lag %v: %s", ts.State, *ts.Lag, ts.StateReason)
	execIn(ctx, t, sub, "app", "ALTER SUBSCRIPTION app_sub ENABLE")
	ts = w.waitFor(t, 20*time.Second, "healthy after ENABLE", func(ts probe.TargetSnapshot) bool { return ts.State == probe.StateHealthy })
	if strings.Contains(ts.StateReason, "disabled") {
		t.Errorf("healthy with reason %q", ts.StateReason)
	}

	// A conflict the apply worker cannot get past: it fails, restarts,
	// fails again (apply_error_count rises). Real lag, the cause named.
	execIn(ctx, t, sub, "app", "INSERT INTO public.app_t VALUES (1)")
	execIn(ctx, t, c.Primary, "postgres", "INSERT INTO public.app_t VALUES (1)")
	ts = w.waitFor(t, 30*time.Second, "failing apply worker is lag with its cause", func(ts probe.TargetSnapshot) bool {
		return (ts.State == probe.StateLagging || ts.State == probe.StateStalled) && ts.Lag != nil &&
			strings.Contains(ts.StateReason, "apply_error_count in pg_stat_subscription_stats rose to")
	})
	t.Logf("apply errors: %s, lag %v: %s", ts.State, *ts.Lag, ts.StateReason)
	execIn(ctx, t, sub, "app", "DELETE FROM public.app_t")
	w.waitFor(t, 30*time.Second, "healthy once the conflict is gone", func(ts probe.TargetSnapshot) bool { return ts.State == probe.StateHealthy })
}

// TestStandbyNotReplayedYetIsConnecting: a delayed standby right after
// the heartbeat table is created is one connecting state with the reason
// until it shows the table, then healthy: no down, no last_error left
// behind (issue 16.4).
func TestStandbyNotReplayedYetIsConnecting(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	s1 := c.Standbys[0]
	execIn(ctx, t, c.Primary, "postgres", "CREATE DATABASE app")
	if err := s1.WaitScalar(ctx, "1", "SELECT count(*) FROM pg_database WHERE datname = 'app'"); err != nil {
		t.Fatal(err)
	}
	const delay = 4 * time.Second
	if err := c.SetApplyDelay(ctx, s1, delay); err != nil {
		t.Fatal(err)
	}
	execIn(ctx, t, c.Primary, "app", heartbeat.SetupSQL(heartbeat.SetupOptions{Role: "walprobe"})...)

	p := runTargets(ctx, t, "diagstandby", inDB(c.Primary, "postgres", "app"), targetSpecT{"replica1", probe.KindStandby, inDB(s1, "walprobe", "app")})
	w := watchTarget(ctx, t, p, "replica1")
	w.waitFor(t, 5*time.Second, "waiting for the table", func(ts probe.TargetSnapshot) bool {
		return ts.State == probe.StateConnecting && strings.Contains(ts.StateReason, "has not replayed the creation of walprobe.heartbeat")
	})
	ts := w.waitFor(t, 3*delay, "healthy once replayed", func(ts probe.TargetSnapshot) bool {
		return ts.BeatsTimed > 0 && (ts.State == probe.StateHealthy || ts.State == probe.StateLagging)
	})
	var states []probe.State
	for _, s := range w.since(0) {
		if n := len(states); n == 0 || states[n-1] != s.State {
			states = append(states, s.State)
		}
		if s.State == probe.StateDown {
			t.Errorf("down while the table was not replayed: %q", s.LastError)
			break
		}
	}
	if ts.LastError != "" {
		t.Errorf("measured with last_error %q", ts.LastError)
	}
	t.Logf("states %v", states)
}
