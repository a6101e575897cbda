package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/walprobe/walprobe/cmd/localcluster"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
)

type demoCmd struct {
	Interval time.Duration `help:"Time between beats." default:"1s"`
	Listen   string        `help:"HTTP address for the status page (/), /metrics and /v1/state while the demo runs." default:"127.0.0.1:9187"`
	Duration time.Duration `help:"Stop after this long (0: until q or Ctrl-C)." default:"0"`
}

// Run starts a throwaway cluster with localcluster (the harness the tests
// use), runs the probe on it and draws a live table with keys to inject
// faults. Every server and temporary directory is removed on the way out.
func (d *demoCmd) Run(ctx context.Context, s streams) error {
	_, err := os.Stat("/usr/sbin/pgbouncer")
	withBouncer := err == nil
	// Progress goes to stderr, one line per step the harness finishes
	// (initdb, start, base backup, subscription sync, pgbouncer); the
	// table owns stdout.
	fmt.Fprintln(s.err, "walprobe demo: starting a throwaway primary, standby and logical subscriber on 127.0.0.1 …")
	if !withBouncer {
		fmt.Fprintln(s.err, "  (pgbouncer not installed: `apt-get install -y pgbouncer` adds a pooled read endpoint)")
	}
	c, err := localcluster.Start(ctx, localcluster.Options{
		Standbys: 1, Subscriber: true, PgBouncer: withBouncer,
		Logf: func(format string, args ...any) { fmt.Fprintf(s.err, "  "+format+"\n", args...) },
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		fmt.Fprintln(s.err, "walprobe demo: stopping servers and removing", c.Dir)
		_ = c.Close()
	}()
	fmt.Fprintln(s.err, "walprobe demo: checking the primary and targets, then the live table …")

	f := probeFlags{
		Primary: c.Primary.DSN("walprobe"), Interval: d.Interval, ProbeID: "demo", Listen: d.Listen, Stream: true,
		Standby:    []string{"standby1=" + c.Standbys[0].DSN("walprobe")},
		Subscriber: []string{"subscriber=" + c.Subscriber.DSN("walprobe")},
	}
	if withBouncer {
		f.Endpoint = []string{"pgbouncer=" + c.PgBouncer.DSN("walprobe")}
	}
	cfg, err := f.validate()
	if err != nil {
		return err
	}
	ui := &demoUI{out: s.out, c: c, events: newEventLog(6)}
	logger := slog.New(slog.NewTextHandler(ui.events, &slog.HandlerOptions{Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "component" {
				return slog.Attr{} // the event log stamps its own time
			}
			return a
		}}))
	a, err := build(ctx, cfg, logger)
	if err != nil {
		return err
	}
	ui.a = a
	// --duration counts from here: the bring-up takes what it takes.
	var cancel context.CancelFunc
	if d.Duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, d.Duration)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	restore := ui.readKeys(ctx, cancel)
	defer restore()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ui.draw(ctx, d.Interval) }()
	err = a.run(ctx)
	cancel()
	wg.Wait()
	restore()
	return err
}

// demoUI draws the table and turns keys into faults.
type demoUI struct {
	out    io.Writer
	c      *localcluster.Cluster
	a      *app
	events *eventLog

	mu                            sync.Mutex // guards the fault flags
	cut, paused, idle, subStalled bool
}

func (u *demoUI) readKeys(ctx context.Context, quit func()) (restore func()) {
	restore = func() {}
	fd := int(os.Stdin.Fd())
	if term.IsTerminal(fd) {
		if old, err := term.MakeRaw(fd); err == nil {
			var once sync.Once
			restore = func() { once.Do(func() { _ = term.Restore(fd, old) }) }
		}
	}
	go func() {
		r := bufio.NewReader(os.Stdin)
		for {
			b, err := r.ReadByte()
			if err != nil || ctx.Err() != nil {
				return
			}
			switch b {
			case 'q', 3: // q or Ctrl-C (raw mode delivers it as a byte)
				quit()
				return
			case 'c', 'p', 'i', 's':
				go u.toggle(ctx, b)
			}
		}
	}()
	return restore
}

func (u *demoUI) toggle(ctx context.Context, key byte) {
	c, sb := u.c, u.c.Standbys[0]
	u.mu.Lock()
	defer u.mu.Unlock()
	var err error
	switch key {
	case 'c':
		if u.cut = !u.cut; u.cut {
			err = c.CutReceiver(ctx, sb)
		} else {
			err = c.RestoreReceiver(ctx, sb)
		}
		u.events.add(fmt.Sprintf("standby1 WAL receiver cut off: %v", u.cut))
	case 'p':
		if u.paused = !u.paused; u.paused {
			err = c.PauseReplay(ctx, sb)
		} else {
			err = c.ResumeReplay(ctx, sb)
		}
		u.events.add(fmt.Sprintf("standby1 replay paused: %v", u.paused))
	case 'i':
		u.idle = !u.idle
		u.a.writer.SetPaused(u.idle)
		u.events.add(fmt.Sprintf("nothing written at all (walprobe's writer paused): %v; caught-up targets go unknown, not lagging", u.idle))
	case 's':
		if u.subStalled = !u.subStalled; u.subStalled {
			err = c.DisableSubscription(ctx)
		} else {
			err = c.EnableSubscription(ctx)
		}
		u.events.add(fmt.Sprintf("subscription disabled: %v", u.subStalled))
	}
	if err != nil {
		u.events.add("fault: " + err.Error())
	}
}

func (u *demoUI) draw(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(min(interval, 500*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fmt.Fprint(u.out, "\x1b[H\x1b[2J"+strings.ReplaceAll(u.render(u.a.probe.Snapshot()), "\n", "\r\n"))
	}
}

// render is the live table: true numbers on the left, classic on the right.
func (u *demoUI) render(s probe.Snapshot) string {
	var b strings.Builder
	seq := int64(0)
	if s.LastBeat != nil {
		seq = s.LastBeat.Seq
	}
	fmt.Fprintf(&b, "walprobe demo   primary %s   beat #%d   missed %d   status page http://%s/\n\n",
		pgconf.Addr(u.a.writerConn()), seq, s.BeatsMissed, u.a.http.Addr())
	fmt.Fprintf(&b, "%-11s %-10s %-10s │ %-9s %-20s │ %-14s %-13s %-10s\n", "TARGET", "KIND", "STATE", "TRUE LAG", "LAST DELAY ±BOUND", "CLASSIC replay", "exporter-lag", "recv-gap")
	fmt.Fprintf(&b, "%s\n", strings.Repeat("─", 112))
	for _, t := range s.Targets {
		replay, exporter, gap := "", "", ""
		if c := t.Classic; c != nil {
			replay, exporter = fmtSecs(c.ReplayTimestampAge), fmtSecs(c.ExporterLag)
			if c.SubscriptionReceiptAge != nil {
				replay = fmtSecs(c.SubscriptionReceiptAge) + " (sub)"
			}
			if c.ReceiveReplayGapBytes != nil {
				gap = fmt.Sprintf("%dB", *c.ReceiveReplayGapBytes)
			}
		}
		delay := "-"
		if t.Delay != nil {
			delay = fmt.Sprintf("%.1fms ±%.2fms", t.Delay.Seconds()*1e3, t.ErrorBound.Seconds()*1e3)
		}
		fmt.Fprintf(&b, "%-11s %-10s %-10s │ %-9s %-20s │ %-14s %-13s %-10s\n", t.Name, t.Kind, t.State, fmtSecs(t.Lag), delay, replay, exporter, gap)
	}
	u.mu.Lock()
	fmt.Fprintf(&b, "\nkeys: [c] cut standby1 off (%v)  [p] pause replay (%v)  [i] pause all writes (%v)  [s] stall subscriber (%v)  [q] quit\n",
		u.cut, u.paused, u.idle, u.subStalled)
	u.mu.Unlock()
	b.WriteString("\nTRUE LAG is the age of the oldest beat a target has not shown: ~0 on an idle application (walprobe's beats still flow), growing when a replica is cut off, unknown when nothing can be written.\n")
	b.WriteString("CLASSIC replay = now() - pg_last_xact_replay_timestamp() (false alarm when nothing is written); exporter-lag reads 0 while cut off.\n\nrecent events:\n")
	for _, e := range u.events.lines() {
		b.WriteString("  " + e + "\n")
	}
	return b.String()
}

func fmtSecs(d *time.Duration) string {
	if d == nil {
		return "NULL"
	}
	return fmt.Sprintf("%.3fs", d.Seconds())
}

// eventLog keeps the last n log lines for the screen.
type eventLog struct {
	mu  sync.Mutex
	buf []string
	n   int
}

func newEventLog(n int) *eventLog { return &eventLog{n: n} }

func (l *eventLog) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		l.add(line)
	}
	return len(p), nil
}

func (l *eventLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, time.Now().Format("15:04:05 ")+s)
	if len(l.buf) > l.n {
		l.buf = l.buf[len(l.buf)-l.n:]
	}
}

func (l *eventLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.buf...)
}
