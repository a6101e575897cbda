package e2e

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
)

// TestLSNLag checks the LSN → time lags derived from what the primary
// reports: caught-up consumers read at most one interval on an idle
// primary, and a logical slot nobody consumes reads a lag that grows with
// wall time while beats continue.
func TestLSNLag(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	const interval = 200 * time.Millisecond
	r := startProbe(ctx, t, c.Primary.DSN("walprobe"), "lsn", interval)
	pcfg, err := pgconf.Parse("primary", c.Primary.DSN("walprobe"))
	if err != nil {
		t.Fatal(err)
	}
	w := probe.NewPrimaryWatcher(pcfg, r.p, slog.New(slog.NewTextHandler(io.Discard, nil)))
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(wctx) }()
	defer func() { cancel(); wg.Wait() }()

	lagOf := func(consumer, lsn string) (float64, bool) {
		for _, l := range r.p.Snapshot().LSNLags {
			if l.Consumer == consumer && l.LSNName == lsn && l.Lag != nil {
				return l.Lag.Seconds(), true
			}
		}
		return 0, false
	}
	fakes.WaitFor(t.Context(), t, 15*time.Second, "standby1 replay LSN lag", func() bool { _, ok := lagOf("standby1@127.0.0.1", "replay"); return ok })

	// A logical slot that is never consumed.
	if err := c.Primary.Exec(ctx, "SELECT pg_create_logical_replication_slot('idle_consumer', 'pgoutput')"); err != nil {
		t.Fatal(err)
	}
	fakes.WaitFor(t.Context(), t, 10*time.Second, "idle_consumer slot lag", func() bool { _, ok := lagOf("idle_consumer", "confirmed_flush"); return ok })
	first, _ := lagOf("idle_consumer", "confirmed_flush")
	time.Sleep(3 * time.Second)
	later, _ := lagOf("idle_consumer", "confirmed_flush")
	t.Logf("never-consumed slot: lag %.2fs, 3 s later %.2fs", first, later)
	if later-first < 2.5 {
		t.Errorf("unconsumed slot lag grew by %.2fs in 3 s, want >= 2.5s", later-first)
	}

	// Idle primary: stop beats; a caught-up standby reads <= one interval.
	r.w.SetPaused(true)
	time.Sleep(3 * time.Second)
	for _, lsn := range []string{"write", "flush", "replay"} {
		lag, ok := lagOf("standby1@127.0.0.1", lsn)
		if !ok || lag > interval.Seconds() {
			t.Errorf("standby1 %s LSN lag on an idle primary = %.3fs (known %v), want <= %v", lsn, lag, ok, interval)
		}
	}
	if err := c.Primary.Exec(ctx, "SELECT pg_drop_replication_slot('idle_consumer')"); err != nil {
		t.Fatal(err)
	}
}
