//go:build !unit

package probe

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/test/cluster"
)

// Two standbys made by pg_basebackup -R (both `walreceiver` on
// 127.0.0.1) at the default wal_receiver_status_interval of 10 s: the
// primary watcher keeps them as two consumers, and neither's LSN lag
// exceeds one beat interval, while beats flow every 200 ms and while they
// pause. Compared with now, as before, a position read once a second
// saw-toothed up to the read interval; and where the last status message
// before a pause carried the replay position of the beat before last, the
// replay lag climbed toward the 10 s status interval.
func TestPrimaryWatcherDefaultStatusInterval(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 2, UnnamedStandbys: true,
		// The harness reports every second; PostgreSQL's default is 10 s.
		ExtraConf: []string{"wal_receiver_status_interval = '10s'"}})
	for _, s := range c.Standbys {
		if got, err := s.Scalar(ctx, "SHOW wal_receiver_status_interval"); err != nil || got != "10s" {
			t.Fatalf("%s: wal_receiver_status_interval = %q, %v; want 10s", s.Name, got, err)
		}
	}
	if got, err := c.Primary.Scalar(ctx, "SELECT string_agg(DISTINCT application_name, ',') FROM pg_stat_replication"); err != nil || got != "walreceiver" {
		t.Fatalf("standbys' application_name = %q, %v; want walreceiver", got, err)
	}

	const interval = 200 * time.Millisecond
	logger := slog.New(slog.DiscardHandler)
	p := New(Config{ProbeID: "lsn_asof", Interval: interval}, logger)
	pcfg, err := pgconf.Parse("primary", c.Primary.DSN("walprobe"))
	if err != nil {
		t.Fatal(err)
	}
	if err := heartbeat.Check(ctx, pcfg); err != nil {
		t.Fatal(err)
	}
	w, err := heartbeat.NewWriter(heartbeat.WriterConfig{Conn: pcfg, ProbeID: "lsn_asof", Interval: interval,
		OnBeat: p.Beat, OnMiss: p.Missed, OnConn: p.WriterConn}, logger)
	if err != nil {
		t.Fatal(err)
	}
	watcher := NewPrimaryWatcher(pcfg, p, logger)
	// Read at walprobe's default interval while beats come five times as
	// often: a position read up to a second ago must not count the beats
	// acked since.
	watcher.interval = time.Second
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{w.Run, p.Run, watcher.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(rctx) }()
	}
	defer func() { cancel(); wg.Wait() }()

	type worst struct{ lag, age float64 }
	seen := map[string]*worst{} // consumer/lsn → the worst seen
	sample := func() (consumers int) {
		names := map[string]bool{}
		for _, l := range p.Snapshot().LSNLags {
			if l.Kind != "replication" || l.Lag == nil || l.PositionAge == nil {
				continue
			}
			names[l.Consumer] = true
			k := l.Consumer + " " + l.LSNName
			if seen[k] == nil {
				seen[k] = &worst{}
			}
			seen[k].lag = max(seen[k].lag, l.Lag.Seconds())
			seen[k].age = max(seen[k].age, l.PositionAge.Seconds())
		}
		return len(names)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sample() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("want two replication consumers within 10 s, got %v", p.Snapshot().LSNLags)
		}
		time.Sleep(50 * time.Millisecond)
	}
	run := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			sample()
		}
	}
	run(6 * time.Second) // beats every 200 ms
	w.SetPaused(true)
	run(7 * time.Second) // an idle primary: status messages only every 10 s
	w.SetPaused(false)
	run(2 * time.Second)

	var keys []string
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{
		"walreceiver@127.0.0.1 flush", "walreceiver@127.0.0.1 replay", "walreceiver@127.0.0.1 write",
		"walreceiver@127.0.0.1#2 flush", "walreceiver@127.0.0.1#2 replay", "walreceiver@127.0.0.1#2 write",
	}
	if len(keys) != len(want) {
		t.Fatalf("LSN lag rows %v, want %v", keys, want)
	}
	oldest := 0.0
	for i, k := range keys {
		if k != want[i] {
			t.Fatalf("LSN lag rows %v, want %v", keys, want)
		}
		t.Logf("%-32s worst lag %.3fs, oldest position %.1fs", k, seen[k].lag, seen[k].age)
		if seen[k].lag > interval.Seconds() {
			t.Errorf("%s: lag reached %.3fs, want <= %v (one beat interval) for a caught-up standby", k, seen[k].lag, interval)
		}
		oldest = max(oldest, seen[k].age)
	}
	// The pause must have left positions seconds old, or the test did not
	// run at the default status interval.
	if oldest < 2 {
		t.Errorf("positions were at most %.1fs old: the idle stretch did not wait on wal_receiver_status_interval", oldest)
	}
}
