//go:build !unit

package walstream

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
)

const (
	beatInterval = 100 * time.Millisecond
	recordCap    = 10000 // the recorder is bounded like everything else
)

// *probe.Target is what cmd/walprobe passes as Target.
var _ Target = (*probe.Target)(nil)

// recorder captures what the probe tells observers.

type recorder struct {
	probe.NopObserver
	mu     sync.Mutex // guards the slices
	vis    []probe.Visibility
	stages []probe.StreamStages
	trans  []probe.TransitionEvent
}

func (r *recorder) Visible(v probe.Visibility) {
	r.mu.Lock()
	if len(r.vis) < recordCap {
		r.vis = append(r.vis, v)
	}
	r.mu.Unlock()
}

func (r *recorder) Stages(s probe.StreamStages) {
	r.mu.Lock()
	if len(r.stages) < recordCap {
		r.stages = append(r.stages, s)
	}
	r.mu.Unlock()
}

func (r *recorder) Transition(e probe.TransitionEvent) {
	r.mu.Lock()
	if len(r.trans) < recordCap {
		r.trans = append(r.trans, e)
	}
	r.mu.Unlock()
}

func (r *recorder) snapshot() ([]probe.Visibility, []probe.StreamStages, []probe.TransitionEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.vis), slices.Clone(r.stages), slices.Clone(r.trans)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rig is a probe hub, a heartbeat writer and a Stream, all running.
type rig struct {
	p      *probe.Probe
	target *probe.Target
	rec    *recorder
	stream *Stream
	logs   *syncBuffer
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// streamDone is closed when Stream.Run returns.
	streamDone chan struct{}
}

// stop ends every component and waits for them.
func (r *rig) stop() {
	r.cancel()
	r.wg.Wait()
}

// startRig runs a writer as walprobe and a stream as streamUser on c's
// primary. mod adjusts the stream's config.
func startRig(ctx context.Context, t *testing.T, c *cluster.Cluster, probeID, streamUser string, mod func(*Config)) *rig {
	t.Helper()
	r := &rig{rec: &recorder{}, logs: &syncBuffer{}, streamDone: make(chan struct{})}
	logger := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.p = probe.New(probe.Config{ProbeID: probeID, Interval: beatInterval}, logger)
	r.p.Observe(r.rec)
	var err error
	if r.target, err = r.p.Register("stream", probe.KindStream); err != nil {
		t.Fatal(err)
	}
	wconn, err := pgconf.Parse("primary", c.Primary.DSN("walprobe"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := heartbeat.NewWriter(heartbeat.WriterConfig{
		Conn: wconn, ProbeID: probeID, Interval: beatInterval,
		OnBeat: r.p.Beat, OnMiss: r.p.Missed, OnConn: r.p.WriterConn,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	sconn, err := pgconf.Parse("stream", c.Primary.DSN(streamUser))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Conn: sconn, ProbeID: probeID, StatusInterval: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	if r.stream, err = New(cfg, r.target, logger); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	r.wg.Add(3)
	go func() { defer r.wg.Done(); _ = r.p.Run(runCtx) }()
	go func() { defer r.wg.Done(); _ = w.Run(runCtx) }()
	go func() {
		defer r.wg.Done()
		defer close(r.streamDone)
		if err := r.stream.Run(runCtx); err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func lastSeen(tg *probe.Target) int64 {
	s, _ := tg.LastSeen()
	return s
}

// slotCount counts walprobe_% slots on the primary.
func slotCount(ctx context.Context, t *testing.T, c *cluster.Cluster) int {
	t.Helper()
	v, err := c.Primary.Scalar(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'walprobe\\_%'")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(v)
	return n
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestStream shares one cluster between the scenarios that leave the
// primary as they found it.
func TestStream(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{})

	t.Run("beats are timed on the stream", func(t *testing.T) {
		r := startRig(ctx, t, c, "timed", "walprobe", nil)
		fakes.WaitFor(ctx, t, 10*time.Second, "the stream to see a beat", func() bool { _, ok := r.target.LastSeen(); return ok })
		first := lastSeen(r.target)
		time.Sleep(20 * beatInterval)
		fakes.WaitFor(ctx, t, 5*time.Second, "15 beats timed", func() bool { v, _, _ := r.rec.snapshot(); return len(v) >= 15 })
		if got := lastSeen(r.target); got <= first {
			t.Errorf("LastSeen stayed at %d", got)
		}
		vis, stages, _ := r.rec.snapshot()
		var delays, commitToSent, sentToRecv, ackToRecv []time.Duration
		for _, v := range vis {
			// Exact when the read waited for the message; a message
			// read from the buffer is bracketed by the reads around it.
			if v.ErrorBound > 5*time.Millisecond {
				t.Errorf("beat %d: ErrorBound %s, want ≤ 5ms", v.Beat.Seq, v.ErrorBound)
			}
			// Never before the beat was sent.
			if v.VisibleAt.Add(v.ErrorBound).Before(v.Beat.Sent) {
				t.Errorf("beat %d: visible %v ± %v before it was sent", v.Beat.Seq, v.Delay, v.ErrorBound)
			}
			if v.Kind != probe.KindStream || v.Target != "stream" {
				t.Errorf("visibility for %s/%s", v.Target, v.Kind)
			}
			delays = append(delays, v.Delay)
		}
		if len(stages) < len(vis) {
			t.Errorf("%d stages for %d visible beats", len(stages), len(vis))
		}
		for _, s := range stages {
			if s.Commit.IsZero() || s.ServerSent.IsZero() || s.Received.IsZero() {
				t.Fatalf("stages with zero times: %+v", s)
			}
			if s.Commit.After(s.ServerSent) {
				t.Errorf("beat %d: commit %s after server sent %s", s.Beat.Seq, s.Commit, s.ServerSent)
			}
			if s.Beat.Seq == 0 {
				t.Errorf("stages without the writer's beat: %+v", s)
				continue
			}
			if s.Received.Before(s.Beat.Sent) {
				t.Errorf("beat %d received %s before it was sent", s.Beat.Seq, s.Beat.Sent.Sub(s.Received))
			}
			if d := s.Received.Sub(s.Beat.Acked); d > time.Second {
				t.Errorf("beat %d received %s after its ack on loopback", s.Beat.Seq, d)
			}
			commitToSent = append(commitToSent, s.ServerSent.Sub(s.Commit))
			sentToRecv = append(sentToRecv, s.Received.Sub(s.ServerSent)) // across clocks, one host here
			ackToRecv = append(ackToRecv, s.Received.Sub(s.Beat.Acked))
		}
		t.Logf("%d beats timed; median delay %s; median commit→sent %s, sent→received %s, acked→received %s",
			len(vis), median(delays), median(commitToSent), median(sentToRecv), median(ackToRecv))
		if r.stream.Missed() != 0 {
			t.Errorf("Missed() = %d on a healthy stream", r.stream.Missed())
		}
	})

	t.Run("clean shutdown drops the slot", func(t *testing.T) {
		r := startRig(ctx, t, c, "shutdown", "walprobe", nil)
		fakes.WaitFor(ctx, t, 10*time.Second, "a walprobe slot", func() bool { return slotCount(ctx, t, c) == 1 })
		r.stop()
		select {
		case <-r.streamDone:
		default:
			t.Fatal("Run did not return after stop")
		}
		start := time.Now()
		fakes.WaitFor(ctx, t, 5*time.Second, "no walprobe slot", func() bool { return slotCount(ctx, t, c) == 0 })
		t.Logf("slot gone %s after Run returned", time.Since(start).Round(time.Millisecond))
	})

	t.Run("slot retains little WAL", func(t *testing.T) {
		r := startRig(ctx, t, c, "retention", "walprobe", nil)
		fakes.WaitFor(ctx, t, 10*time.Second, "the stream to see a beat", func() bool { _, ok := r.target.LastSeen(); return ok })
		const q = `SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), -1)::bigint
FROM pg_replication_slots WHERE slot_name LIKE 'walprobe\_%'`
		retained := func() int64 {
			v, err := c.Primary.Scalar(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
		// Other probes writing the same table (carried by the publication,
		// not ours) plus unrelated WAL (not carried at all).
		noise, err := c.Primary.Connect(ctx, "walprobe")
		if err != nil {
			t.Fatal(err)
		}
		defer noise.Close(context.WithoutCancel(ctx))
		if err := c.Primary.Exec(ctx, "CREATE TABLE IF NOT EXISTS public.noise (id int primary key, pad text); GRANT ALL ON public.noise TO walprobe"); err != nil {
			t.Fatal(err)
		}
		start, _ := c.Primary.Scalar(ctx, "SELECT pg_current_wal_lsn()::text")
		deadline := time.Now().Add(15 * time.Second)
		var peak int64
		upserts := 0
		for i := 0; time.Now().Before(deadline); i++ {
			if upserts < 1000 {
				for range 100 {
					if _, err := noise.Exec(ctx, `INSERT INTO walprobe.heartbeat AS h (probe_id, seq, written_at) VALUES ($1, 1, now())
ON CONFLICT (probe_id) DO UPDATE SET seq = h.seq + 1, written_at = now()`, fmt.Sprintf("other%d", upserts%10)); err != nil {
						t.Fatal(err)
					}
					upserts++
				}
				if _, err := noise.Exec(ctx, `INSERT INTO public.noise SELECT g, repeat('x', 200) FROM generate_series(1, 1000) g
ON CONFLICT (id) DO UPDATE SET pad = EXCLUDED.pad`); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(500 * time.Millisecond)
			peak = max(peak, retained())
		}
		end, _ := c.Primary.Scalar(ctx, "SELECT pg_current_wal_lsn()::text")
		startLSN, _ := heartbeat.ParseLSN(start)
		endLSN, _ := heartbeat.ParseLSN(end)
		final := retained()
		t.Logf("%d extra upserts, %d bytes of WAL written in 15 s; slot retention peak %d B (sampled every 500 ms), final %d B; beats seen up to seq %d",
			upserts, endLSN-startLSN, peak, final, lastSeen(r.target))
		if final < 0 {
			t.Errorf("confirmed_flush_lsn is %d B past pg_current_wal_lsn() (or no slot): the stream confirms WAL that does not exist", -final)
		}
		if peak >= 1<<20 || final >= 1<<20 {
			t.Errorf("slot retains %d B (peak %d B), want < 1 MiB", final, peak)
		}
		if r.stream.Missed() != 0 {
			t.Errorf("Missed() = %d", r.stream.Missed())
		}
	})

	t.Run("seq gap counts as missed", func(t *testing.T) {
		r := startRig(ctx, t, c, "gappy", "walprobe", nil)
		fakes.WaitFor(ctx, t, 10*time.Second, "beats timed", func() bool { v, _, _ := r.rec.snapshot(); return len(v) >= 2 })
		// Skip five seqs behind the writer's back: the stream sees seq
		// jump by 5 within one connection.
		if err := c.Primary.Exec(ctx, "UPDATE walprobe.heartbeat SET seq = seq + 5 WHERE probe_id = 'gappy'"); err != nil {
			t.Fatal(err)
		}
		fakes.WaitFor(ctx, t, 5*time.Second, "Missed() = 4", func() bool { return r.stream.Missed() == 4 })
		n := len(func() []probe.Visibility { v, _, _ := r.rec.snapshot(); return v }())
		fakes.WaitFor(ctx, t, 5*time.Second, "beats timed after the gap", func() bool { v, _, _ := r.rec.snapshot(); return len(v) > n+2 })
		if got := r.stream.Missed(); got != 4 {
			t.Errorf("Missed() = %d, want 4", got)
		}
	})

	t.Run("actionable errors", func(t *testing.T) {
		tests := []struct {
			name  string
			user  string
			setup func(t *testing.T)
			mod   func(*Config)
			want  []string
		}{
			{name: "role without REPLICATION", user: "norepl",
				setup: func(t *testing.T) {
					if err := c.Primary.Exec(ctx, "CREATE ROLE norepl LOGIN PASSWORD '"+c.Password+"'"); err != nil {
						t.Fatal(err)
					}
				},
				want: []string{"REPLICATION", `ALTER ROLE "norepl" REPLICATION`}},
			{name: "missing publication", user: "walprobe", mod: func(c *Config) { c.Publication = "nope" },
				want: []string{`publication "nope" does not exist`, "CREATE PUBLICATION"}},
			{name: "wal senders exhausted", user: "walprobe", setup: func(t *testing.T) { hogSenders(ctx, t, c) },
				want: []string{"raise max_wal_senders"}},
			{name: "replication slots exhausted", user: "walprobe", setup: func(t *testing.T) { hogSlots(ctx, t, c) },
				want: []string{"raise max_replication_slots"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.setup != nil {
					tt.setup(t)
				}
				r := startRig(ctx, t, c, "errs", tt.user, tt.mod)
				var reason string
				fakes.WaitFor(ctx, t, 10*time.Second, "the target to go down", func() bool {
					_, _, trans := r.rec.snapshot()
					for _, e := range trans {
						if e.To == probe.StateDown {
							reason = e.Reason
							return true
						}
					}
					return false
				})
				for _, w := range tt.want {
					if !strings.Contains(reason, w) {
						t.Errorf("down reason %q, want it to contain %q", reason, w)
					}
				}
				// Let it retry a few times: the error is logged once.
				time.Sleep(time.Second)
				r.stop()
				logs := r.logs.String()
				if n := strings.Count(logs, `msg="stream down"`); n != 1 {
					t.Errorf("logged %d times, want once:\n%s", n, logs)
				}
				if strings.Contains(logs, c.Password) || strings.Contains(reason, c.Password) {
					t.Errorf("the password leaked into logs or errors")
				}
				t.Logf("down: %s", reason)
			})
		}
	})
}

// hogSenders opens replication connections until the primary refuses one.
func hogSenders(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(c.Primary.DSN("walprobe"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["replication"] = "database"
	var conns []*pgconn.PgConn
	t.Cleanup(func() {
		for _, cn := range conns {
			_ = cn.Close(context.WithoutCancel(ctx))
		}
	})
	for range 100 {
		cn, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			if !strings.Contains(err.Error(), "max_wal_senders") {
				t.Fatalf("hog connection %d: %v", len(conns), err)
			}
			t.Logf("max_wal_senders reached after %d connections", len(conns))
			return
		}
		conns = append(conns, cn)
	}
	t.Fatal("100 replication connections and max_wal_senders not reached")
}

// hogSlots creates logical slots until the primary has none left, and
// drops them at cleanup.
func hogSlots(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	t.Helper()
	conn, err := c.Primary.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'hog\\_%'")
		_ = conn.Close(context.WithoutCancel(ctx))
	})
	for i := range 100 {
		_, err := conn.Exec(ctx, "SELECT pg_create_physical_replication_slot($1)", fmt.Sprintf("hog_%d", i))
		if err != nil {
			if !strings.Contains(err.Error(), "all replication slots are in use") {
				t.Fatalf("hog slot %d: %v", i, err)
			}
			t.Logf("max_replication_slots reached after %d slots", i)
			return
		}
	}
	t.Fatal("100 slots and max_replication_slots not reached")
}

// TestStreamReconnects restarts the primary under a running stream.
func TestStreamReconnects(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{})
	r := startRig(ctx, t, c, "restart", "walprobe", nil)
	fakes.WaitFor(ctx, t, 10*time.Second, "beats timed", func() bool { v, _, _ := r.rec.snapshot(); return len(v) >= 3 })
	before := lastSeen(r.target)
	restarted := time.Now()
	if err := c.Primary.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	fakes.WaitFor(ctx, t, 30*time.Second, "down then connected again", func() bool {
		_, _, trans := r.rec.snapshot()
		down := false
		for _, e := range trans {
			down = down || e.To == probe.StateDown
			if down && e.Event == probe.EventConnected {
				return true
			}
		}
		return false
	})
	t.Logf("reconnected %s after the restart began", time.Since(restarted).Round(time.Millisecond))
	_, _, trans := r.rec.snapshot()
	for _, e := range trans {
		if e.To == probe.StateDown {
			t.Logf("down: %s", e.Reason)
		}
	}
	fakes.WaitFor(ctx, t, 10*time.Second, "LastSeen to advance past the restart", func() bool { return lastSeen(r.target) > before+2 })
	n := len(func() []probe.Visibility { v, _, _ := r.rec.snapshot(); return v }())
	fakes.WaitFor(ctx, t, 10*time.Second, "beats timed after the restart", func() bool { v, _, _ := r.rec.snapshot(); return len(v) > n })
	// Each connection starts a new slot after the gap: a gap across a
	// reconnect is not a seq gap on one stream.
	if got := r.stream.Missed(); got != 0 {
		t.Errorf("Missed() = %d, want 0 (no seq gap within a connection)", got)
	}
	fakes.WaitFor(ctx, t, 5*time.Second, "exactly one walprobe slot", func() bool { return slotCount(ctx, t, c) == 1 })
	r.stop()
	fakes.WaitFor(ctx, t, 5*time.Second, "no walprobe slot", func() bool { return slotCount(ctx, t, c) == 0 })
	if strings.Contains(r.logs.String(), c.Password) {
		t.Errorf("the password leaked into logs")
	}
}

// TestStreamWalLevel runs against a primary with wal_level = replica.
func TestStreamWalLevel(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{ExtraConf: []string{"wal_level = replica"}})
	r := startRig(ctx, t, c, "wal_level", "walprobe", nil)
	var reason string
	fakes.WaitFor(ctx, t, 10*time.Second, "the target to go down", func() bool {
		_, _, trans := r.rec.snapshot()
		for _, e := range trans {
			if e.To == probe.StateDown {
				reason = e.Reason
				return true
			}
		}
		return false
	})
	if want := "set wal_level = logical in postgresql.conf and restart the primary"; !strings.Contains(reason, want) {
		t.Errorf("down reason %q, want it to contain %q", reason, want)
	}
	t.Logf("down: %s", reason)
}
