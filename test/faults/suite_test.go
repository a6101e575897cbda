package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/launch"
)

const interval = 200 * time.Millisecond

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// leastPrivRole creates role with password pw and exactly the grants
// `walprobe setup --print-sql --role` prints: LOGIN and REPLICATION (the
// comment it prints), USAGE on the schema and SELECT, INSERT, UPDATE on
// the table. No pg_monitor (it is optional), no superuser.
func leastPrivRole(ctx context.Context, t *testing.T, c *cluster.Cluster, role, pw string) {
	t.Helper()
	out, err := launch.Command(context.Background(), t, "setup", "--print-sql", "--role", role).CombinedOutput()
	if err != nil {
		t.Fatalf("walprobe setup --print-sql: %v\n%s", err, out)
	}
	script := string(out)
	if !strings.Contains(script, "ALTER ROLE \""+role+"\" LOGIN REPLICATION") || !strings.Contains(script, "GRANT SELECT, INSERT, UPDATE ON walprobe.heartbeat TO \""+role+"\"") {
		t.Fatalf("setup --print-sql no longer prints the grants this suite relies on:\n%s", script)
	}
	// The ALTER ROLE line is a comment in the script: the role must exist
	// before its GRANTs run.
	if err := c.Primary.Exec(ctx, fmt.Sprintf("CREATE ROLE %q LOGIN REPLICATION PASSWORD '%s'", role, pw)); err != nil {
		t.Fatalf("create role %s: %v", role, err)
	}
	if err := c.Primary.Exec(ctx, script); err != nil {
		t.Fatalf("run setup --print-sql for %s: %v", role, err)
	}
	v, err := c.Primary.Scalar(ctx, "SELECT rolsuper OR pg_has_role($1, 'pg_monitor', 'MEMBER') FROM pg_roles WHERE rolname = $1", role)
	if err != nil || v != "f" {
		t.Fatalf("role %s is superuser or pg_monitor (%q, %v), want neither", role, v, err)
	}
}

// TestFaultSuite runs one walprobe binary through every fault; the
// subtests share the cluster and the process and run in order (the
// failover, which retires the primary, last).
func TestFaultSuite(t *testing.T) {
	ctx := context.Background()
	begin := time.Now()
	c := cluster.StartT(t, cluster.Options{Standbys: 2, PgBouncer: true})
	s1, s2 := c.Standbys[0], c.Standbys[1]

	// One least-privilege role per password source, each with its own
	// canary, so a hit names the source that leaked.
	secrets := map[string]string{
		"DSN":           "dsnpw-" + randomHex(6),
		".pgpass":       "pgpasspw-" + randomHex(6),
		"password_file": "filepw-" + randomHex(6),
		"PGPASSWORD":    "envpw-" + randomHex(6),
		"cluster":       c.Password, // the superuser's: never given to the probe
	}
	roles := map[string]string{"DSN": "wp_dsn", ".pgpass": "wp_pgpass", "password_file": "wp_file", "PGPASSWORD": "wp_env"}
	for src, role := range roles {
		leastPrivRole(ctx, t, c, role, secrets[src])
	}
	for _, s := range c.Standbys {
		if err := s.WaitScalar(ctx, "4", "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'wp\\_%'"); err != nil {
			t.Fatal(err)
		}
	}
	// pgbouncer checks clients against its auth file and logs in to the
	// standby with the password it finds there: add wp_file and reload.
	uf, err := os.OpenFile(filepath.Join(c.PgBouncer.Dir, "userlist.txt"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(uf, "\"wp_file\" \"%s\"\n", secrets["password_file"])
	uf.Close()
	if err := syscall.Kill(c.PgBouncer.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}

	x := newToxi(t)
	pxPrimary := x.proxy(t, "primary", c.Primary.Port)
	pxStandby := x.proxy(t, "standby1", s1.Port)
	pxBouncer := x.proxy(t, "pgbouncer", c.PgBouncer.Port)

	dir := t.TempDir()
	pgpass := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(pgpass, []byte(fmt.Sprintf("127.0.0.1:%d:*:wp_pgpass:%s\n", pxStandby.Port, secrets[".pgpass"])), 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(secrets["password_file"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wh := fakes.NewWebhook(t)
	out := newCorpus()
	otlp := fakes.NewOTLP(t)

	// The primary is a multi-host DSN: the old primary through toxiproxy,
	// then standby2; target_session_attrs=read-write picks the writable one.
	primary := fmt.Sprintf("postgres://wp_dsn:%s@127.0.0.1:%d,127.0.0.1:%d/postgres?target_session_attrs=read-write&sslmode=disable&connect_timeout=2",
		secrets["DSN"], pxPrimary.Port, s2.Port)
	kv := func(port int, user string) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable connect_timeout=2", port, user)
	}
	w := startWalprobe(t, []string{"PGPASSFILE=" + pgpass, "PGPASSWORD="},
		"run", "--primary", primary,
		"--standby", "standby1="+kv(pxStandby.Port, "wp_pgpass"),
		"--standby", "standby2="+kv(s2.Port, "wp_file"),
		"--endpoint", "bouncer="+kv(pxBouncer.Port, "wp_file"),
		"--password-file", pwFile,
		"--interval", interval.String(), "--probe-id", "faults",
		"--json", "--log-format", "json", "--log-level", "debug",
		"--webhook-url", wh.URL+"/hook/"+randomHex(4), "--alert-lag-warning", "1s", "--alert-lag-critical", "3s",
		"--stall-after", "3s",
		"--otlp-endpoint", otlp.URL, "--otlp-protocol", "http", "--trace-timeout", "2s")
	smp := newSampler(w, out)
	defer smp.close()

	allHealthy := func(st state) bool {
		n := 0
		for _, tg := range st.Targets {
			if tg.State == "healthy" && tg.Delay != nil {
				n++
			}
		}
		return n == 4
	}
	smp.waitFor(t, 30*time.Second, "every target healthy with a timed beat", allHealthy)

	// window runs a fault for hold, then undoes it and waits for recovery;
	// it returns the samples from the fault's start to the recovery.
	type window struct {
		samples []sample // from the last sample before the fault to recovery
		before  state
		during  state     // last sample before undo
		start   time.Time // fault injected
		undo    time.Time // fault undone
	}
	run := func(t *testing.T, hold time.Duration, do, undo func(), recovered func(state) bool) window {
		t.Helper()
		// Start from calm: a fault on one server can leave another target
		// (pgbouncer's backend after a standby restart) recovering.
		smp.waitFor(t, 30*time.Second, "every target healthy before the fault", allHealthy)
		var win window
		win.before = smp.latest()
		m := max(0, smp.mark()-1)
		win.start = time.Now()
		do()
		time.Sleep(hold)
		win.during = smp.latest()
		win.undo = time.Now()
		undo()
		smp.waitFor(t, 40*time.Second, "recovery", recovered)
		win.samples = smp.since(m)
		return win
	}
	timed := func(st state, name string) int64 { tg, _ := st.target(name); return tg.BeatsTimed }
	checkNoZeroLag := func(t *testing.T, samples []sample, names ...string) {
		t.Helper()
		for _, n := range names {
			if bad := zeroLagWhileDown(samples, n); len(bad) > 0 {
				t.Errorf("%s read lag 0 while down at %v", n, bad)
			}
		}
	}
	healthy := func(name string) func(state) bool {
		return func(st state) bool {
			tg, ok := st.target(name)
			return ok && tg.State == "healthy" && tg.Lag != nil && *tg.Lag < 1
		}
	}

	// primaryOutage checks what every primary fault must show: beats
	// missed and counted for each interval of the outage, the writer
	// reported down, every caught-up target unknown (lag null, not 0, not
	// a fake climb; its upper bound growing) and never down.
	primaryOutage := func(t *testing.T, win window, outage time.Duration) {
		t.Helper()
		// Counted once recovered: an attempt blocked in a connect timeout
		// reports the intervals it used up when it returns.
		after := win.samples[len(win.samples)-1].s
		missed := after.BeatsMissed - win.before.BeatsMissed
		want := int64(float64(outage/interval) * 0.8)
		t.Logf("primary out %v: %d beats missed (want >= %d; %d counted by the end of the outage), primary up %v, standby1 lag upper bound %.2fs, standby2 %.2fs, stream states %v",
			outage, missed, want, win.during.BeatsMissed-win.before.BeatsMissed, win.during.Primary.Up,
			maxUpper(win.samples, "standby1"), maxUpper(win.samples, "standby2"), states(win.samples, "stream"))
		if missed < want {
			t.Errorf("%d beats missed during a %v outage at %v, want >= %d", missed, outage, interval, want)
		}
		if win.during.Primary.Up {
			t.Errorf("primary reported up during the outage")
		}
		// The writer's side: up, down, up again.
		var up []string
		for _, sm := range win.samples {
			v := fmt.Sprint(sm.s.Primary.Up)
			if len(up) == 0 || up[len(up)-1] != v {
				up = append(up, v)
			}
		}
		if !hasSubsequence(up, "true", "false", "true") {
			t.Errorf("primary up sequence %v, want true … false … true", up)
		}
		for _, n := range []string{"standby1", "standby2", "bouncer"} {
			// Reachable caught-up targets are neither down nor lagging:
			// their lag is unknown, then they recover.
			sq := states(win.samples, n)
			if !hasSubsequence(sq, "healthy", "unknown", "healthy") || hasSubsequence(sq, "down") || hasSubsequence(sq, "lagging") {
				t.Errorf("%s states %v during a primary outage, want healthy … unknown … healthy, never down or lagging", n, sq)
			}
			if mu := maxUpper(win.samples, n); mu < outage.Seconds()*0.6 {
				t.Errorf("%s lag upper bound reached %.2fs during a %v primary outage, want >= %.2fs", n, mu, outage, outage.Seconds()*0.6)
			}
			// In the outage's second half the lag is unknown: null, never
			// a number that looks measured.
			for _, sm := range win.samples {
				if sm.at.Before(win.start.Add(outage/2)) || !sm.at.Before(win.undo) {
					continue
				}
				if tg, ok := sm.s.target(n); ok && tg.Lag != nil {
					t.Errorf("%s read lag %.3fs %v into a primary outage, want null (unknown)", n, *tg.Lag, sm.at.Sub(win.start).Round(time.Millisecond))
					break
				}
			}
		}
		checkNoZeroLag(t, win.samples, "standby1", "standby2", "bouncer", "stream")
		if m, err := w.get("/metrics"); err != nil || !strings.Contains(m, "walprobe_beats_missed") {
			t.Errorf("/metrics has no walprobe_beats_missed counter (%v)", err)
		} else {
			out.add("/metrics", m)
			if v := metricValue(m, "walprobe_beats_missed"); v < float64(win.during.BeatsMissed) {
				t.Errorf("walprobe_beats_missed %.0f < /v1/state beats_missed %d", v, win.during.BeatsMissed)
			}
		}
	}
	allBack := func(st state) bool {
		for _, n := range []string{"standby1", "standby2", "bouncer"} {
			if !healthy(n)(st) {
				return false
			}
		}
		return st.Primary.Up
	}

	// Each case brings the probe from calm (every target healthy) to a
	// fault and back, so `-run TestFaultSuite/NAME` runs one alone; the
	// failover, which promotes standby2 for good, is last.
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"standby_latency_200ms", func(t *testing.T) {
			var tox string
			win := run(t, 4*time.Second,
				func() { tox = pxStandby.add(t, "latency", "downstream", map[string]any{"latency": 200}) },
				func() { pxStandby.remove(t, tox) }, healthy("standby1"))
			sq := states(win.samples, "standby1")
			maxBound := 0.0
			for _, sm := range win.samples {
				if tg, ok := sm.s.target("standby1"); ok && tg.ErrorBound != nil {
					maxBound = max(maxBound, *tg.ErrorBound)
				}
			}
			n := timed(win.during, "standby1") - timed(win.before, "standby1")
			t.Logf("standby1 with 200 ms latency: states %v, %d beats timed in 4 s, max error bound %.3fs, max lag %.3fs", sq, n, maxBound, maxLag(win.samples, "standby1"))
			if hasSubsequence(sq, "down") {
				t.Errorf("standby1 went down under 200 ms latency: states %v", sq)
			}
			if n < 5 {
				t.Errorf("%d beats timed on standby1 in 4 s of 200 ms latency, want >= 5", n)
			}
			// Every poll's result is 200 ms late: an honest error bound is at
			// least half of that.
			if maxBound < 0.09 {
				t.Errorf("max error bound %.3fs under 200 ms latency, want >= 0.09s (the bound must widen, not hide the slow link)", maxBound)
			}
		}},
		{"standby_bandwidth_1KBps", func(t *testing.T) {
			var tox string
			win := run(t, 5*time.Second,
				func() { tox = pxStandby.add(t, "bandwidth", "downstream", map[string]any{"rate": 1}) },
				func() { pxStandby.remove(t, tox) }, healthy("standby1"))
			sq := states(win.samples, "standby1")
			n := timed(win.during, "standby1") - timed(win.before, "standby1")
			t.Logf("standby1 at 1 KB/s: states %v, %d beats timed in 5 s, max lag %.3fs", sq, n, maxLag(win.samples, "standby1"))
			if n < 3 {
				t.Errorf("%d beats timed on standby1 in 5 s at 1 KB/s, want >= 3", n)
			}
			checkNoZeroLag(t, win.samples, "standby1")
		}},
		{"standby_reset_peer", func(t *testing.T) {
			var tox string
			win := run(t, 4*time.Second,
				func() { tox = pxStandby.add(t, "reset_peer", "upstream", map[string]any{"timeout": 0}) },
				func() { pxStandby.remove(t, tox) }, healthy("standby1"))
			sq := states(win.samples, "standby1")
			t.Logf("standby1 reset by peer for 4 s: states %v, max lag %.3fs, error %q", sq, maxLag(win.samples, "standby1"), func() string { tg, _ := win.during.target("standby1"); return tg.LastError }())
			if !hasSubsequence(sq, "healthy", "down", "healthy") {
				t.Errorf("states %v, want healthy … down … healthy", sq)
			}
			if ml := maxLag(win.samples, "standby1"); ml < 2.5 {
				t.Errorf("max lag %.3fs while standby1 was reset for 4 s, want >= 2.5s", ml)
			}
			checkNoZeroLag(t, win.samples, "standby1")
		}},
		{"standby_blackhole", func(t *testing.T) {
			var tox string
			// A poll that gets no answer is first a slow poll (lagging, then
			// stalled: the lag is real), and down only once the poll timeout
			// (10 s) passed and a reconnect failed too: 14 s of blackhole.
			win := run(t, 14*time.Second,
				func() { tox = pxStandby.add(t, "timeout", "downstream", map[string]any{"timeout": 0}) },
				func() { pxStandby.remove(t, tox) }, healthy("standby1"))
			sq := states(win.samples, "standby1")
			t.Logf("standby1 blackholed for 14 s: states %v, max lag %.3fs", sq, maxLag(win.samples, "standby1"))
			if !hasSubsequence(sq, "healthy", "stalled", "down", "healthy") {
				t.Errorf("states %v, want healthy … stalled … down … healthy (a query into a blackhole times out, then the reconnect fails)", sq)
			}
			if ml := maxLag(win.samples, "standby1"); ml < 10 {
				t.Errorf("max lag %.3fs while standby1 was blackholed for 14 s, want >= 10s", ml)
			}
			checkNoZeroLag(t, win.samples, "standby1")
			// A stuck reader must not pile up sessions: once the blackhole is
			// gone, standby1 holds exactly the reader's one session again.
			var sessions string
			deadline := time.Now().Add(15 * time.Second)
			for {
				v, err := c.Standbys[0].Scalar(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'wp_pgpass'")
				if err == nil {
					sessions = v
				}
				if sessions == "1" || time.Now().After(deadline) {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			t.Logf("reader sessions on standby1 after the blackhole: %s", sessions)
			if sessions != "1" {
				t.Errorf("standby1 holds %s sessions of the reader's role 15 s after the blackhole, want 1 (sessions pile up)", sessions)
			}
		}},
		{"standby_restart", func(t *testing.T) {
			win := run(t, 0,
				func() {
					if err := s1.Stop(ctx); err != nil {
						t.Fatal(err)
					}
					smp.waitFor(t, 15*time.Second, "standby1 down", func(st state) bool { tg, _ := st.target("standby1"); return tg.State == "down" })
					time.Sleep(2 * time.Second)
				},
				func() {
					if err := s1.Start(ctx); err != nil {
						t.Fatal(err)
					}
				}, healthy("standby1"))
			sq := states(win.samples, "standby1")
			t.Logf("standby1 stopped and started: states %v, max lag %.3fs", sq, maxLag(win.samples, "standby1"))
			if !hasSubsequence(sq, "healthy", "down", "healthy") {
				t.Errorf("states %v, want healthy … down … healthy", sq)
			}
			if ml := maxLag(win.samples, "standby1"); ml < 1.5 {
				t.Errorf("max lag %.3fs while standby1 was stopped >= 2 s, want >= 1.5s", ml)
			}
			checkNoZeroLag(t, win.samples, "standby1")
		}},
		{"pgbouncer_restart_slow_close", func(t *testing.T) {
			// slow_close holds every close from pgbouncer's side for 3 s: the
			// probe must not wait for the FIN to call the endpoint down.
			tox := pxBouncer.add(t, "slow_close", "downstream", map[string]any{"delay": 3000})
			defer pxBouncer.remove(t, tox)
			win := run(t, 0,
				func() {
					if err := c.PgBouncer.Stop(ctx); err != nil {
						t.Fatal(err)
					}
					smp.waitFor(t, 15*time.Second, "bouncer down", func(st state) bool { tg, _ := st.target("bouncer"); return tg.State == "down" })
					time.Sleep(2 * time.Second)
				},
				func() {
					if err := c.PgBouncer.Start(ctx); err != nil {
						t.Fatal(err)
					}
				}, healthy("bouncer"))
			sq := states(win.samples, "bouncer")
			t.Logf("pgbouncer stopped and started behind slow_close 3 s: states %v, max lag %.3fs", sq, maxLag(win.samples, "bouncer"))
			if !hasSubsequence(sq, "healthy", "down", "healthy") {
				t.Errorf("states %v, want healthy … down … healthy", sq)
			}
			checkNoZeroLag(t, win.samples, "bouncer")
			for _, n := range []string{"standby1", "standby2", "stream"} {
				if got := states(win.samples, n); hasSubsequence(got, "down") {
					t.Errorf("%s went down while only pgbouncer was: %v", n, got)
				}
			}
		}},
		{"primary_latency_200ms", func(t *testing.T) {
			var tox string
			maxRTT := 0.0
			win := run(t, 4*time.Second,
				func() { tox = pxPrimary.add(t, "latency", "downstream", map[string]any{"latency": 200}) },
				func() { pxPrimary.remove(t, tox) }, allBack)
			for _, sm := range win.samples {
				if sm.s.LastBeat != nil {
					maxRTT = max(maxRTT, sm.s.LastBeat.WriteRTT)
				}
			}
			beats := win.during.Beats - win.before.Beats
			t.Logf("primary with 200 ms latency: %d beats in 4 s, max write RTT %.3fs, missed %d", beats, maxRTT, win.during.BeatsMissed-win.before.BeatsMissed)
			if maxRTT < 0.19 {
				t.Errorf("max write RTT %.3fs with 200 ms latency, want >= 0.19s", maxRTT)
			}
			if beats < 8 {
				t.Errorf("%d beats in 4 s with 200 ms latency, want >= 8", beats)
			}
			for _, n := range []string{"standby1", "standby2", "bouncer", "stream"} {
				if hasSubsequence(states(win.samples, n), "down") {
					t.Errorf("%s went down while the primary was only slow: %v", n, states(win.samples, n))
				}
			}
		}},
		{"primary_blackhole", func(t *testing.T) {
			var tox string
			win := run(t, 5*time.Second,
				func() { tox = pxPrimary.add(t, "timeout", "downstream", map[string]any{"timeout": 0}) },
				func() { pxPrimary.remove(t, tox) }, allBack)
			primaryOutage(t, win, 5*time.Second)
		}},
		{"primary_reset_peer", func(t *testing.T) {
			var tox string
			win := run(t, 4*time.Second,
				func() { tox = pxPrimary.add(t, "reset_peer", "upstream", map[string]any{"timeout": 0}) },
				func() { pxPrimary.remove(t, tox) }, allBack)
			primaryOutage(t, win, 4*time.Second)
		}},
		{"primary_restart", func(t *testing.T) {
			win := run(t, 4*time.Second,
				func() {
					if err := c.Primary.Stop(ctx); err != nil {
						t.Fatal(err)
					}
				},
				func() {
					if err := c.Primary.Start(ctx); err != nil {
						t.Fatal(err)
					}
				}, allBack)
			primaryOutage(t, win, 4*time.Second)
		}},
		{"pgpassword_source", func(t *testing.T) {
			// PGPASSWORD wins over ~/.pgpass and --password-file, so it gets
			// its own short run through a standby fault.
			w2 := startWalprobe(t, []string{"PGPASSWORD=" + secrets["PGPASSWORD"], "PGPASSFILE=" + filepath.Join(dir, "none")},
				"run", "--primary", kv(pxPrimary.Port, "wp_env"),
				"--standby", "standby1="+kv(pxStandby.Port, "wp_env"),
				"--interval", interval.String(), "--probe-id", "faults-env", "--json", "--log-level", "debug")
			smp2 := newSampler(w2, out)
			smp2.waitFor(t, 20*time.Second, "standby1 healthy for the PGPASSWORD probe", healthy("standby1"))
			time.Sleep(2 * time.Second)
			tox := pxStandby.add(t, "reset_peer", "upstream", map[string]any{"timeout": 0})
			smp2.waitFor(t, 15*time.Second, "standby1 down for the PGPASSWORD probe", func(st state) bool { tg, _ := st.target("standby1"); return tg.State == "down" })
			time.Sleep(2 * time.Second)
			pxStandby.remove(t, tox)
			smp2.waitFor(t, 20*time.Second, "standby1 back for the PGPASSWORD probe", healthy("standby1"))
			time.Sleep(time.Second)
			smp2.close()
			w2.stop(t)
			if n := len(w2.Stdout()); n < 10 {
				t.Errorf("the PGPASSWORD probe printed %d --json lines, want >= 10", n)
			}
			out.add("PGPASSWORD run stderr", w2.Logs())
			out.add("PGPASSWORD run --json", w2.stdout())
			smp.waitFor(t, 20*time.Second, "the main probe healthy again", allBack)
		}},
		{"failover", func(t *testing.T) {
			before := smp.latest()
			if err := c.Promote(ctx, s2); err != nil {
				t.Fatal(err)
			}
			smp.waitFor(t, 15*time.Second, "standby2 promoted", func(st state) bool { tg, _ := st.target("standby2"); return tg.State == "promoted" })
			// Split brain for a moment, as in a real failover: the writer
			// still writes on the old primary, beats standby2 never gets.
			time.Sleep(time.Second)
			if err := c.Primary.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			stopped := smp.latest()
			// The writer must follow: beats acked again, on standby2.
			smp.waitFor(t, 30*time.Second, "beats written on the promoted standby2", func(st state) bool {
				return st.Primary.Up && st.Beats >= stopped.Beats+10
			})
			after := smp.latest()
			seq, err := s2.Scalar(ctx, "SELECT seq FROM walprobe.heartbeat WHERE probe_id = 'faults' AND written_at > now() - interval '2 seconds'")
			if err != nil {
				t.Fatalf("no recent beat row on the promoted standby2: %v", err)
			}
			n, _ := strconv.ParseInt(seq, 10, 64)
			t.Logf("failover: beats %d → %d (at stop) → %d, missed %d → %d, last seq %d, standby2's row seq %d",
				before.Beats, stopped.Beats, after.Beats, before.BeatsMissed, after.BeatsMissed, after.LastBeat.Seq, n)
			if after.LastBeat == nil || n < after.LastBeat.Seq || after.LastBeat.Seq <= stopped.LastBeat.Seq {
				t.Errorf("standby2's row seq %d, probe's last seq %v, at the stop %v: want beats on standby2 with seq still growing", n, after.LastBeat, stopped.LastBeat)
			}
			// At least the beat due when the old primary's session died is lost.
			if after.BeatsMissed <= before.BeatsMissed {
				t.Errorf("beats missed %d → %d: the failover must count the beats it lost", before.BeatsMissed, after.BeatsMissed)
			}
			if tg, _ := after.target("standby2"); tg.State != "promoted" {
				t.Errorf("standby2 %s after the failover, want promoted", tg.State)
			}
			if !w.Running() {
				t.Fatalf("walprobe exited during the failover: %v", w.Err())
			}
			// The logical stream uses the same multi-host DSN: it follows too,
			// with a new temporary slot on the promoted server.
			smp.waitFor(t, 30*time.Second, "the stream timing beats from the new primary", func(st state) bool {
				tg, ok := st.target("stream")
				return ok && tg.State == "healthy" && tg.BeatsTimed > func() int64 { tg, _ := after.target("stream"); return tg.BeatsTimed }()+5
			})
			if v, err := s2.Scalar(ctx, "SELECT count(*) FROM pg_replication_slots WHERE temporary AND active"); err != nil || v != "1" {
				t.Errorf("temporary active slots on the new primary: %q (%v), want 1", v, err)
			}
			// The promoted server's row is behind the old primary's by the
			// split-brain beats; seq must still only grow.
			if bad := seqWentBack(smp.since(0)); len(bad) > 0 {
				t.Errorf("the newest beat's seq went back: %v", bad)
			}
		}},
	}
	ran := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ran[tc.name] = true
			tc.run(t)
		})
	}
	smp.close()
	w.stop(t)
	if code := launch.ExitCode(w.Err()); code != 0 {
		t.Errorf("walprobe exited %d after SIGTERM, want 0", code)
	}
	out.add("stderr (json logs)", w.Logs())
	out.add("stdout (--json)", w.stdout())
	for _, r := range wh.Requests() {
		out.add("webhook bodies", r.Path+" "+string(r.Body))
	}
	// protobuf carries strings as raw bytes: a substring search of the
	// gunzipped exports finds a password in any attribute or label.
	for _, r := range otlp.Requests() {
		out.add("OTLP "+r.Path, string(r.Body))
	}

	// No secret anywhere, over what the cases that ran produced: every
	// run captures logs, --json, the HTTP surface and OTLP; a fault case
	// adds logged errors and webhook bodies, pgpassword_source its own.
	sizes := out.sizes()
	t.Logf("scanned bytes per source: %v; webhook bodies %d", sizes, len(wh.Requests()))
	srcs := []string{"stderr (json logs)", "stdout (--json)", "/v1/state", "/metrics", "/v1/history", "OTLP /v1/traces", "OTLP /v1/metrics"}
	faultRan := len(ran) > 1 || (len(ran) == 1 && !ran["pgpassword_source"])
	if faultRan {
		srcs = append(srcs, "webhook bodies")
		// The errors the probe reported must be in what was scanned.
		if !strings.Contains(w.Logs(), `"error"`) {
			t.Errorf("no error was logged during the fault cases: the scan of errors would prove nothing")
		}
	}
	if ran["pgpassword_source"] {
		srcs = append(srcs, "PGPASSWORD run stderr", "PGPASSWORD run --json")
	}
	for _, src := range srcs {
		if sizes[src] < 100 {
			t.Errorf("%s: only %d bytes captured, the secret scan would prove nothing", src, sizes[src])
		}
	}
	for _, hit := range out.scan(secrets) {
		t.Error(hit)
	}
	t.Logf("fault suite took %v", time.Since(begin).Round(time.Second))
}

// metricValue sums the samples of a Prometheus metric family by name prefix.
func metricValue(text, name string) float64 {
	var sum float64
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, name) && !strings.HasPrefix(l, "#") {
			f := strings.Fields(l)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}
