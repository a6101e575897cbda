// Package metrics turns the probe's observations into OpenTelemetry
// instruments. The same instruments feed the Prometheus endpoint and any
// other reader added to the MeterProvider (OTLP).
//
// Instrument names are OpenTelemetry style ("walprobe.lag", unit "s"); the
// Prometheus exporter renders them with unit suffixes (walprobe_lag_seconds).
// Labels name targets by their configured name and kind, never by DSN.
package metrics

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/attribute"
	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
)

// ScopeName is the instrumentation scope of every walprobe instrument.
const ScopeName = "github.com/walprobe/walprobe"

// DelayBuckets are the histogram bounds for visibility delays, in seconds:
// fine below 10 ms where healthy replicas live, coarse up to a minute.
var DelayBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Metrics implements probe.Observer and registers observable instruments
// that read the probe's snapshot at collection time, so a lag read at
// scrape time is the lag at scrape time.
type Metrics struct {
	probe.NopObserver
	p *probe.Probe

	delay       metric.Float64Histogram
	streamDelay metric.Float64Histogram
	writeRTT    metric.Float64Histogram
	beats       metric.Int64Counter
	missed      metric.Int64Counter
	transitions metric.Int64Counter
}

// New registers walprobe's instruments on mp and starts observing p.
func New(p *probe.Probe, mp metric.MeterProvider) (*Metrics, error) {
	m := &Metrics{p: p}
	meter := mp.Meter(ScopeName)
	var err error
	must := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	var e error
	m.delay, e = meter.Float64Histogram("walprobe.visibility.delay", metric.WithUnit("s"),
		metric.WithDescription("Time from a beat's ack (its commit's reply reaching the probe) until it was visible on the target (probe's monotonic clock)."),
		metric.WithExplicitBucketBoundaries(DelayBuckets...))
	must(e)
	m.streamDelay, e = meter.Float64Histogram("walprobe.stream.delay", metric.WithUnit("s"),
		metric.WithDescription("A beat's trip to the logical replication stream, by stage: commit_to_sent, sent_to_received (primary clock to probe clock), total (acked to received)."),
		metric.WithExplicitBucketBoundaries(DelayBuckets...))
	must(e)
	m.writeRTT, e = meter.Float64Histogram("walprobe.beat.write.duration", metric.WithUnit("s"),
		metric.WithDescription("Round trip of the heartbeat upsert on the primary."),
		metric.WithExplicitBucketBoundaries(DelayBuckets...))
	must(e)
	m.beats, e = meter.Int64Counter("walprobe.beats", metric.WithDescription("Heartbeats written to the primary."))
	must(e)
	m.missed, e = meter.Int64Counter("walprobe.beats.missed", metric.WithDescription("Intervals in which no heartbeat could be written."))
	must(e)
	m.transitions, e = meter.Int64Counter("walprobe.target.transitions", metric.WithDescription("Target state transitions."))
	must(e)

	lag, e := meter.Float64ObservableGauge("walprobe.lag", metric.WithUnit("s"),
		metric.WithDescription("Current lag: age of the oldest acked beat the target has not shown; 0 when it shows every beat."))
	must(e)
	upper, e := meter.Float64ObservableGauge("walprobe.lag.upper_bound", metric.WithUnit("s"),
		metric.WithDescription("While a target's lag is unknown (state unknown: the primary cannot be written and the target had shown every acked beat): the time since the writer stopped, which the lag cannot exceed. Absent otherwise."))
	must(e)
	bound, e := meter.Float64ObservableGauge("walprobe.visibility.error_bound", metric.WithUnit("s"),
		metric.WithDescription("Error bound (half the bracketing poll interval) of the last timed beat."))
	must(e)
	lastDelay, e := meter.Float64ObservableGauge("walprobe.visibility.last_delay", metric.WithUnit("s"),
		metric.WithDescription("Visibility delay of the last timed beat."))
	must(e)
	state, e := meter.Int64ObservableGauge("walprobe.target.state",
		metric.WithDescription("1 for the target's current state, 0 for the others."))
	must(e)
	replayAge, e := meter.Float64ObservableGauge("walprobe.classic.replay_timestamp_age", metric.WithUnit("s"),
		metric.WithDescription("CLASSIC: now() - pg_last_xact_replay_timestamp() on the target; grows while the primary idles."))
	must(e)
	exporterLag, e := meter.Float64ObservableGauge("walprobe.classic.exporter_lag", metric.WithUnit("s"),
		metric.WithDescription("CLASSIC: the exporter-style CASE WHEN receive_lsn = replay_lsn THEN 0 query; reads 0 while the WAL receiver is cut off."))
	must(e)
	gap, e := meter.Int64ObservableGauge("walprobe.classic.receive_replay_gap", metric.WithUnit("By"),
		metric.WithDescription("CLASSIC: pg_last_wal_receive_lsn() - pg_last_wal_replay_lsn() on the target."))
	must(e)
	replLag, e := meter.Float64ObservableGauge("walprobe.classic.replication_lag", metric.WithUnit("s"),
		metric.WithDescription("CLASSIC: pg_stat_replication write/flush/replay_lag on the primary (sampled; stale when idle)."))
	must(e)
	subAge, e := meter.Float64ObservableGauge("walprobe.classic.subscription_age", metric.WithUnit("s"),
		metric.WithDescription("CLASSIC: seconds since pg_stat_subscription's last_msg_receipt_time, last_msg_send_time, latest_end_time."))
	must(e)
	lsnLag, e := meter.Float64ObservableGauge("walprobe.lsn_lag", metric.WithUnit("s"),
		metric.WithDescription("Time lag derived from a consumer's LSN on the primary (pg_stat_replication, pg_replication_slots) through the beat history."))
	must(e)
	lost, e := meter.Int64ObservableCounter("walprobe.beats.lost",
		metric.WithDescription("Beats acked by an old primary that never reached the new timeline after a failover, per target that had not shown them: lost, not slow."))
	must(e)
	dropped, e := meter.Int64ObservableCounter("walprobe.observations.dropped",
		metric.WithDescription("Observations that cannot be true (a poll that ended before the beat was sent showed it), dropped instead of timed."))
	must(e)
	lsnAge, e := meter.Float64ObservableGauge("walprobe.lsn_position_age", metric.WithUnit("s"),
		metric.WithDescription("How long before now a consumer's LSN lag holds: since its last reply_time on the primary, or since the read for a slot nobody streams."))
	must(e)
	syncState, e := meter.Int64ObservableGauge("walprobe.sync.state",
		metric.WithDescription("Standby targets: 1 for the sync_state the primary's pg_stat_replication gives the standby (matched by application_name = target name), 0 for the others; unknown without pg_monitor or a matching row."))
	must(e)
	commitWait, e := meter.Float64ObservableGauge("walprobe.sync.commit_wait", metric.WithUnit("s"),
		metric.WithDescription("Estimated time a commit waits for synchronous standbys: pg_stat_replication write/flush/replay_lag (by synchronous_commit) of the standbys it waits for, median of the last 8 reads; 0 when commits do not wait; absent when unknown."))
	must(e)
	commitsWaiting, e := meter.Int64ObservableGauge("walprobe.sync.commits_waiting",
		metric.WithDescription("Backends the probe's role sees waiting for synchronous replication (wait_event SyncRep) on the primary."))
	must(e)
	if err != nil {
		return nil, fmt.Errorf("register instruments: %w", err)
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := p.Snapshot()
		for _, t := range s.Targets {
			attrs := metric.WithAttributes(TargetAttrs(t.Name, t.Kind)...)
			if t.Lag != nil {
				o.ObserveFloat64(lag, t.Lag.Seconds(), attrs)
			}
			if t.LagUpperBound != nil {
				o.ObserveFloat64(upper, t.LagUpperBound.Seconds(), attrs)
			}
			if t.ErrorBound != nil {
				o.ObserveFloat64(bound, t.ErrorBound.Seconds(), attrs)
				o.ObserveFloat64(lastDelay, t.Delay.Seconds(), attrs)
			}
			o.ObserveInt64(lost, t.BeatsLost, attrs)
			for _, r := range probe.DropReasons {
				o.ObserveInt64(dropped, t.Dropped[r], metric.WithAttributes(append(TargetAttrs(t.Name, t.Kind), attribute.String("reason", string(r)))...))
			}
			for _, st := range probe.States {
				v := int64(0)
				if st == t.State {
					v = 1
				}
				o.ObserveInt64(state, v, metric.WithAttributes(append(TargetAttrs(t.Name, t.Kind), attribute.String("state", string(st)))...))
			}
			if t.Sync != nil {
				for _, st := range probe.SyncStates {
					v := int64(0)
					if st == t.Sync.State {
						v = 1
					}
					o.ObserveInt64(syncState, v, metric.WithAttributes(append(TargetAttrs(t.Name, t.Kind), attribute.String("sync_state", st))...))
				}
			}
			if c := t.Classic; c != nil {
				if c.ReplayTimestampAge != nil {
					o.ObserveFloat64(replayAge, c.ReplayTimestampAge.Seconds(), attrs)
				}
				if c.ExporterLag != nil {
					o.ObserveFloat64(exporterLag, c.ExporterLag.Seconds(), attrs)
				}
				if c.ReceiveReplayGapBytes != nil {
					o.ObserveInt64(gap, *c.ReceiveReplayGapBytes, attrs)
				}
				for field, v := range map[string]*time.Duration{
					"last_msg_receipt": c.SubscriptionReceiptAge, "last_msg_send": c.SubscriptionSendAge, "latest_end": c.SubscriptionEndAge,
				} {
					if v != nil {
						o.ObserveFloat64(subAge, v.Seconds(), metric.WithAttributes(append(TargetAttrs(t.Name, t.Kind), attribute.String("field", field))...))
					}
				}
			}
		}
		if c := s.Primary.Classic; c != nil {
			for _, r := range c.Replication {
				for name, v := range map[string]*time.Duration{"write": r.WriteLag, "flush": r.FlushLag, "replay": r.ReplayLag} {
					if v != nil {
						o.ObserveFloat64(replLag, v.Seconds(), metric.WithAttributes(attribute.String("application_name", r.ApplicationName), attribute.String("lsn", name)))
					}
				}
			}
		}
		if sr := s.Primary.Sync; sr != nil {
			if sr.CommitWait != nil {
				o.ObserveFloat64(commitWait, sr.CommitWait.Seconds())
			}
			o.ObserveInt64(commitsWaiting, sr.Waiting)
		}
		// consumer is application_name@address (#n for same-named rows) or
		// a slot name: configuration, not pids, so the label set stays
		// bounded however often consumers reconnect.
		aged := map[[2]string]bool{}
		for _, l := range s.LSNLags {
			if l.Lag != nil {
				o.ObserveFloat64(lsnLag, l.Lag.Seconds(), metric.WithAttributes(
					attribute.String("consumer", l.Consumer), attribute.String("kind", l.Kind), attribute.String("lsn", l.LSNName)))
			}
			// One age per consumer: its positions share one report.
			if k := [2]string{l.Consumer, l.Kind}; l.PositionAge != nil && !aged[k] {
				aged[k] = true
				o.ObserveFloat64(lsnAge, l.PositionAge.Seconds(), metric.WithAttributes(
					attribute.String("consumer", l.Consumer), attribute.String("kind", l.Kind)))
			}
		}
		return nil
	}, lag, upper, bound, lastDelay, state, replayAge, exporterLag, gap, replLag, subAge, lsnLag, lsnAge, lost, dropped, syncState, commitWait, commitsWaiting)
	if err != nil {
		return nil, fmt.Errorf("register callback: %w", err)
	}
	p.Observe(m)
	return m, nil
}

// TargetAttrs are the attributes that identify a target on every series.
func TargetAttrs(name string, kind probe.Kind) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("target", name), attribute.String("kind", string(kind))}
}

// Beat implements probe.Observer.
func (m *Metrics) Beat(b heartbeat.Beat) {
	ctx := context.Background()
	m.beats.Add(ctx, 1)
	m.writeRTT.Record(ctx, b.RTT().Seconds())
}

// Missed implements probe.Observer.
func (m *Metrics) Missed(time.Time, error) { m.missed.Add(context.Background(), 1) }

// Visible implements probe.Observer.
func (m *Metrics) Visible(v probe.Visibility) {
	// Histograms take non-negative values: a beat visible before its ack
	// counts as 0.
	m.delay.Record(context.Background(), max(v.Delay, 0).Seconds(), metric.WithAttributes(TargetAttrs(v.Target, v.Kind)...))
}

// Transition implements probe.Observer.
func (m *Metrics) Transition(t probe.TransitionEvent) {
	m.transitions.Add(context.Background(), 1, metric.WithAttributes(append(TargetAttrs(t.Target, t.Kind),
		attribute.String("from", string(t.From)), attribute.String("to", string(t.To)))...))
}

// Stages implements probe.Observer.
func (m *Metrics) Stages(s probe.StreamStages) {
	ctx := context.Background()
	base := TargetAttrs(s.Target, probe.KindStream)
	rec := func(stage string, d time.Duration) {
		m.streamDelay.Record(ctx, max(d, 0).Seconds(), metric.WithAttributes(append(base, attribute.String("stage", stage))...))
	}
	if !s.Commit.IsZero() && !s.ServerSent.IsZero() {
		rec("commit_to_sent", s.ServerSent.Sub(s.Commit))
		rec("sent_to_received", s.Received.Sub(s.ServerSent))
	}
	if !s.Beat.Acked.IsZero() {
		rec("total", s.Received.Sub(s.Beat.Acked))
	}
}

// Prometheus returns a MeterProvider reader that serves the Prometheus
// text format, with its own registry (never the global one), and the
// handler for /metrics.
func Prometheus() (sdkmetric.Reader, http.Handler, error) {
	reg := prometheus.NewRegistry()
	// The probe's own health beside what it measures, as every Prometheus
	// exporter serves it: go_goroutines, go_memstats_*, process_*. The
	// soak test (test/soak) reads them to show heap and goroutines flat.
	// go_gc_heap_live_bytes (the heap the last GC kept) shows growth
	// without go_memstats_heap_alloc_bytes's GC-cycle sawtooth.
	goc := collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)}))
	for _, c := range []prometheus.Collector{goc, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, nil, fmt.Errorf("register runtime metrics: %w", err)
		}
	}
	exp, err := promexp.New(
		promexp.WithRegisterer(reg),
		promexp.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		promexp.WithoutScopeInfo(),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	return exp, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}), nil
}
