package jsonl

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink"
)

// QueueSize is how many lines wait for a slow output before lines are
// dropped.
const QueueSize = 1024

// Writer prints each timed beat as one JSON line. Observers must not
// block, and an output can (a slow pipe), so lines queue in a bounded
// channel and are dropped, counted, when it is full.
type Writer struct {
	probe.NopObserver
	out     io.Writer
	ch      chan probe.Visibility
	dropped atomic.Int64
	logger  *slog.Logger
}

// New returns a Writer printing to out.
func New(out io.Writer, logger *slog.Logger) *Writer {
	return &Writer{out: out, ch: make(chan probe.Visibility, QueueSize), logger: logger.With("component", "jsonl")}
}

// Line is one line of output.
type Line struct {
	Target     string       `json:"target"`
	Kind       probe.Kind   `json:"kind"`
	Seq        int64        `json:"seq"`
	LSN        string       `json:"lsn"`
	Sent       time.Time    `json:"sent"`
	Acked      time.Time    `json:"acked"`
	VisibleAt  time.Time    `json:"visible_at"`
	Delay      sink.Seconds `json:"delay_seconds"`
	ErrorBound sink.Seconds `json:"error_bound_seconds"`
}

// lineOf is v as a Line.
func lineOf(v probe.Visibility) Line {
	return Line{
		Target: v.Target, Kind: v.Kind, Seq: v.Beat.Seq, LSN: v.Beat.LSN.String(),
		Sent: v.Beat.Sent, Acked: v.Beat.Acked, VisibleAt: v.VisibleAt,
		Delay: sink.SecondsOf(v.Delay), ErrorBound: sink.SecondsOf(v.ErrorBound),
	}
}

// Visible implements probe.Observer: it queues v, or drops it when the
// queue is full.
func (w *Writer) Visible(v probe.Visibility) {
	select {
	case w.ch <- v:
	default:
		w.dropped.Add(1)
	}
}

// Dropped is the number of lines dropped on a full queue.
func (w *Writer) Dropped() int64 { return w.dropped.Load() }

// Run writes queued lines until ctx ends, then reports drops, and returns
// nil.
func (w *Writer) Run(ctx context.Context) error {
	enc := json.NewEncoder(w.out)
	for {
		select {
		case <-ctx.Done():
			if n := w.dropped.Load(); n > 0 {
				w.logger.Warn("--json lines dropped: stdout was too slow", "dropped", n)
			}
			return nil
		case v := <-w.ch:
			_ = enc.Encode(lineOf(v))
		}
	}
}
