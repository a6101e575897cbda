package otlp

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
)

// TraceScope is the instrumentation scope of beat traces.
const TraceScope = "github.com/walprobe/walprobe/sink/otlp"

// Target is one target a beat trace expects a child span for.
type Target struct {
	Name string
	Kind probe.Kind
	// Attrs describe where it is (server.address, server.port); never a
	// DSN or password.
	Attrs []attribute.KeyValue
}

// TracerConfig configures a Tracer.
type TracerConfig struct {
	Targets []Target
	// Timeout: a beat that some target has not shown this long after it
	// was sent ends, and those targets' spans are errors. Default 10×
	// Interval.
	Timeout  time.Duration
	Interval time.Duration // default 1s
	// MaxOpen bounds the beats waiting for targets; past it the oldest is
	// ended early. Default 64.
	MaxOpen int
}

// Tracer is a probe.Observer that emits one trace per beat. Spans are
// built when the beat completes, with the timestamps the probe measured,
// so nothing is held open in the SDK and memory is MaxOpen beats.
type Tracer struct {
	probe.NopObserver
	cfg    TracerConfig
	tracer trace.Tracer
	state  func(target string) (probe.State, bool)
	// syncRep and syncOf give the primary's synchronous replication at a
	// beat's ack and a standby's sync_state; nil without a probe.
	syncRep func() *probe.SyncRep
	syncOf  func(target string) probe.SyncInfo
	now     func() time.Time

	mu   sync.Mutex  // guards open and the beats in it
	open []*openBeat // by seq, oldest first
}

type openBeat struct {
	beat    heartbeat.Beat
	sync    *probe.SyncRep // as last read when the beat was acked
	vis     map[string]probe.Visibility
	stages  map[string]probe.StreamStages
	pending int // expected targets not yet visible
}

// NewTracer returns a Tracer emitting to tp. p, when not nil, gives each
// target's state for the span attributes.
func NewTracer(cfg TracerConfig, tp trace.TracerProvider, p *probe.Probe) (*Tracer, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * cfg.Interval
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = 64
	}
	seen := map[string]bool{}
	for _, t := range cfg.Targets {
		if seen[t.Name] {
			return nil, fmt.Errorf("tracer: duplicate target %q", t.Name)
		}
		seen[t.Name] = true
	}
	t := &Tracer{cfg: cfg, tracer: tp.Tracer(TraceScope), now: time.Now}
	if p != nil {
		t.state = func(name string) (probe.State, bool) {
			tg, ok := p.Target(name)
			if !ok {
				return "", false
			}
			return tg.State(), true
		}
		t.syncRep, t.syncOf = p.SyncRep, p.Sync
	}
	return t, nil
}

// Beat opens a trace for b.
func (t *Tracer) Beat(b heartbeat.Beat) {
	if len(t.cfg.Targets) == 0 {
		return
	}
	var done []finished
	var sr *probe.SyncRep
	if t.syncRep != nil {
		sr = t.syncRep()
	}
	t.mu.Lock()
	t.open = append(t.open, &openBeat{beat: b, sync: sr, vis: map[string]probe.Visibility{}, stages: map[string]probe.StreamStages{}, pending: len(t.cfg.Targets)})
	for len(t.open) > t.cfg.MaxOpen {
		done = append(done, finished{ob: t.open[0], end: t.now(), reason: fmt.Sprintf("evicted: more than %d beats open", t.cfg.MaxOpen)})
		t.open = t.open[1:]
	}
	t.mu.Unlock()
	t.emit(done)
}

// Visible records a target showing a beat.
func (t *Tracer) Visible(v probe.Visibility) {
	t.update(v.Beat.Seq, func(ob *openBeat) {
		if _, dup := ob.vis[v.Target]; !dup && t.expected(v.Target) {
			ob.vis[v.Target] = v
			ob.pending--
		}
	})
}

// Stages records the stream's stages of a beat.
func (t *Tracer) Stages(s probe.StreamStages) {
	seq := s.Beat.Seq
	if seq == 0 {
		seq = s.Seq
	}
	t.update(seq, func(ob *openBeat) { ob.stages[s.Target] = s })
}

func (t *Tracer) expected(name string) bool {
	for _, tg := range t.cfg.Targets {
		if tg.Name == name {
			return true
		}
	}
	return false
}

// update applies fn to the open beat seq and emits it when complete: every
// target showed it, and the stream targets reported their stages (Stages
// follows Visible from the same goroutine).
func (t *Tracer) update(seq int64, fn func(*openBeat)) {
	var done []finished
	t.mu.Lock()
	for i, ob := range t.open {
		if ob.beat.Seq != seq {
			continue
		}
		fn(ob)
		if t.completeLocked(ob) {
			done = append(done, finished{ob: ob, end: lastVisible(ob)})
			t.open = append(t.open[:i:i], t.open[i+1:]...)
		}
		break
	}
	t.mu.Unlock()
	t.emit(done)
}

func (t *Tracer) completeLocked(ob *openBeat) bool {
	if ob.pending > 0 {
		return false
	}
	for _, tg := range t.cfg.Targets {
		if tg.Kind == probe.KindStream {
			if _, ok := ob.stages[tg.Name]; !ok {
				return false
			}
		}
	}
	return true
}

func lastVisible(ob *openBeat) time.Time {
	end := ob.beat.Sent
	for _, v := range ob.vis {
		if v.VisibleAt.After(end) {
			end = v.VisibleAt
		}
	}
	return end
}

// Run ends beats that reached the timeout until ctx ends, then ends every
// open beat.
func (t *Tracer) Run(ctx context.Context) error {
	tick := time.NewTicker(min(max(t.cfg.Interval/4, 25*time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			t.flush("probe stopped")
			return nil
		case <-tick.C:
			t.expire()
		}
	}
}

func (t *Tracer) expire() {
	now := t.now()
	var done []finished
	t.mu.Lock()
	keep := t.open[:0]
	for _, ob := range t.open {
		deadline := ob.beat.Sent.Add(t.cfg.Timeout)
		switch {
		case ob.pending == 0:
			// Every target showed it; a stream stage never came.
			done = append(done, finished{ob: ob, end: lastVisible(ob)})
		case !now.Before(deadline):
			done = append(done, finished{ob: ob, end: deadline, reason: "not visible within " + t.cfg.Timeout.String()})
		default:
			keep = append(keep, ob)
		}
	}
	clear(t.open[len(keep):])
	t.open = keep
	t.mu.Unlock()
	t.emit(done)
}

func (t *Tracer) flush(reason string) {
	now := t.now()
	t.mu.Lock()
	done := make([]finished, 0, len(t.open))
	for _, ob := range t.open {
		done = append(done, finished{ob: ob, end: now, reason: reason})
	}
	t.open = nil
	t.mu.Unlock()
	t.emit(done)
}

// finished is a beat ready for spans. reason, when set, is why the targets
// without a visibility did not show it.
type finished struct {
	ob     *openBeat
	end    time.Time
	reason string
}

func (t *Tracer) emit(done []finished) {
	for _, f := range done {
		t.spans(f)
	}
}

func (t *Tracer) spans(f finished) {
	b := f.ob.beat
	ctx, root := t.tracer.Start(context.Background(), "beat",
		trace.WithTimestamp(b.Sent),
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.Int64("walprobe.beat.seq", b.Seq),
			attribute.String("walprobe.beat.lsn", b.LSN.String()),
			attribute.Float64("walprobe.beat.write.duration", b.RTT().Seconds()),
		))
	// Whom this beat's commit waited for, as the primary said at its ack;
	// the wait is PostgreSQL's lag estimate, not this beat's own.
	if sr := f.ob.sync; sr != nil {
		root.SetAttributes(
			attribute.String("walprobe.sync.synchronous_commit", sr.SynchronousCommit),
			attribute.String("walprobe.sync.standby_names", sr.StandbyNames))
		if sr.WaitsFor != nil {
			root.SetAttributes(attribute.StringSlice("walprobe.sync.waits_for", sr.WaitsFor))
		}
		if sr.CommitWait != nil {
			root.SetAttributes(attribute.Float64("walprobe.sync.commit_wait", sr.CommitWait.Seconds()))
		}
	}
	missing := 0
	for _, tg := range t.cfg.Targets {
		attrs := append([]attribute.KeyValue{
			attribute.String("target", tg.Name),
			attribute.String("kind", string(tg.Kind)),
			attribute.String("db.system.name", "postgresql"),
		}, tg.Attrs...)
		if t.state != nil {
			if st, ok := t.state(tg.Name); ok {
				attrs = append(attrs, attribute.String("walprobe.target.state", string(st)))
			}
		}
		if t.syncOf != nil && tg.Kind == probe.KindStandby {
			attrs = append(attrs, attribute.String("walprobe.sync.state", t.syncOf(tg.Name).State))
		}
		v, ok := f.ob.vis[tg.Name]
		end := f.end
		if ok {
			end = v.VisibleAt
			attrs = append(attrs,
				attribute.Float64("walprobe.visibility.delay", v.Delay.Seconds()),
				attribute.Float64("walprobe.visibility.error_bound", v.ErrorBound.Seconds()))
		}
		_, sp := t.tracer.Start(ctx, tg.Name, trace.WithTimestamp(b.Sent), trace.WithAttributes(attrs...))
		if s, ok := f.ob.stages[tg.Name]; ok {
			for _, ev := range []struct {
				name string
				at   time.Time
			}{{"commit", s.Commit}, {"server_sent", s.ServerSent}, {"received", s.Received}} {
				if !ev.at.IsZero() {
					sp.AddEvent(ev.name, trace.WithTimestamp(ev.at))
				}
			}
		}
		if !ok {
			missing++
			sp.SetStatus(codes.Error, f.reason)
		}
		sp.End(trace.WithTimestamp(end))
	}
	if missing > 0 {
		root.SetAttributes(attribute.Int("walprobe.beat.targets_missing", missing))
		root.SetStatus(codes.Error, fmt.Sprintf("%d of %d targets: %s", missing, len(t.cfg.Targets), f.reason))
	}
	root.End(trace.WithTimestamp(f.end))
}

// ConnTarget describes a target for spans by where it connects: host (or
// socket directory) and port, never user, database, password or DSN.
func ConnTarget(name string, kind probe.Kind, c *pgconn.Config) Target {
	t := Target{Name: name, Kind: kind}
	if c == nil {
		return t
	}
	if c.Host != "" {
		t.Attrs = append(t.Attrs, attribute.String("server.address", c.Host))
	}
	if c.Port != 0 {
		t.Attrs = append(t.Attrs, attribute.Int("server.port", int(c.Port)))
	}
	return t
}
