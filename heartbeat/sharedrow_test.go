//go:build !unit

package heartbeat_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
)

// TestSharedProbeID runs two writers with the same probe id against one
// real primary, each reporting to its own probe as `walprobe run` wires it:
// both report the shared row in /v1/state's primary.error, naming
// --probe-id, warn once, and keep recording beats; once one stops, the
// other clears.
func TestSharedProbeID(t *testing.T) {
	const probeID = "shared-id"
	c := cluster.StartT(t, cluster.Options{})
	conn, err := pgconf.Parse("primary", c.Primary.DSN("walprobe"))
	if err != nil {
		t.Fatal(err)
	}

	a := startWriter(t.Context(), t, conn, probeID)
	fakes.WaitFor(t.Context(), t, 10*time.Second, "a writes beats", func() bool { return a.p.Snapshot().Beats >= 5 })
	if got := a.conflicts(); len(got) > 0 {
		t.Fatalf("a alone reported %v", got)
	}

	// Half an interval apart, so the two interleave: each writes once
	// between two of the other's beats.
	time.Sleep(sharedInterval / 2)
	b := startWriter(t.Context(), t, conn, probeID)
	beatsBefore := a.p.Snapshot().Beats
	time.Sleep(3 * time.Second)
	for _, s := range []*writerSide{a, b} {
		name := map[*writerSide]string{a: "a", b: "b"}[s]
		snap := s.p.Snapshot()
		if !snap.Primary.Up {
			t.Errorf("%s: primary.up = false while both write", name)
		}
		for _, want := range []string{`probe id "` + probeID + `"`, pgconf.Addr(conn), "give each probe its own --probe-id"} {
			if !strings.Contains(snap.Primary.Error, want) {
				t.Errorf("%s: primary.error = %q, want it to contain %q", name, snap.Primary.Error, want)
			}
		}
		if strings.Contains(snap.Primary.Error+s.logs.String(), c.Password) {
			t.Errorf("%s: primary.error or the logs hold the password", name)
		}
		got := s.conflicts()
		if len(got) != 1 {
			t.Errorf("%s: %d conflict reports in 3 s (%v), want 1: one per episode", name, len(got), got)
		} else if ce := (*heartbeat.ProbeIDConflictError)(nil); !errors.As(got[0], &ce) || ce.To <= ce.From+1 || ce.ProbeID != probeID {
			t.Errorf("%s: reported %#v, want a *ProbeIDConflictError with a jump", name, got[0])
		}
		if n := strings.Count(s.logs.String(), "another probe shares the heartbeat row"); n != 1 {
			t.Errorf("%s: warned %d times, want once:\n%s", name, n, s.logs.String())
		}
	}
	if n := a.p.Snapshot().Beats - beatsBefore; n < 10 {
		t.Errorf("a recorded %d beats in 3 s of sharing, want ≥ 10: a shared row's beats are still written", n)
	}

	b.stop()
	fakes.WaitFor(t.Context(), t, 10*time.Second, "a clears once b stops", func() bool { return a.p.Snapshot().Primary.Error == "" })
	if got := a.conflicts(); len(got) != 2 || got[1] != nil {
		t.Errorf("a: conflict reports %v, want [conflict, nil]", got)
	}
	if !strings.Contains(a.logs.String(), "heartbeat row no longer shared") {
		t.Errorf("a: no log of the end of the episode:\n%s", a.logs.String())
	}
}

const sharedInterval = 100 * time.Millisecond

// writerSide is one probe and its writer, as `walprobe run` wires them,
// with every OnConflict call and the logs kept for the test.
type writerSide struct {
	logs   syncBuffer
	p      *probe.Probe
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex // guards errs
	errs []error    // every OnConflict call, nil for an end
}

// startWriter starts a writer for probeID reporting to a probe of its own;
// t.Cleanup stops it.
func startWriter(ctx context.Context, t *testing.T, conn *pgx.ConnConfig, probeID string) *writerSide {
	t.Helper()
	s := &writerSide{done: make(chan struct{})}
	logger := slog.New(slog.NewTextHandler(&s.logs, nil))
	s.p = probe.New(probe.Config{ProbeID: probeID, Interval: sharedInterval}, logger)
	w, err := heartbeat.NewWriter(heartbeat.WriterConfig{
		Conn: conn, ProbeID: probeID, Interval: sharedInterval,
		OnBeat: s.p.Beat, OnMiss: s.p.Missed, OnConn: s.p.WriterConn,
		OnConflict: func(err error) {
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.mu.Unlock()
			s.p.WriterConflict(err)
		},
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	go func() {
		defer close(s.done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(s.stop)
	return s
}

// stop ends the writer and waits for its Run to return; again is a no-op.
func (s *writerSide) stop() {
	s.cancel()
	<-s.done
}

func (s *writerSide) conflicts() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

// syncBuffer collects logs from several goroutines.
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
