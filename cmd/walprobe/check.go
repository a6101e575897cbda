package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/walprobe/walprobe/probe"
)

// checkCmd is a one-shot Nagios/Icinga plugin: it writes beats until every
// target has shown one (or cannot), prints one status line and exits with
// the plugin status.
type checkCmd struct {
	probeFlags
	Warning  time.Duration `help:"Delay at which a target is WARNING." default:"1s"`
	Critical time.Duration `help:"Delay at which a target is CRITICAL." default:"5s"`
	Timeout  time.Duration `help:"Give up measuring after this long; targets still without a timed beat are judged by their lag." default:"10s"`
	Format   string        `help:"nagios: one status line with perfdata. pgpool: one delay in ms per --standby per line, -1 when not measured; for a standby behind beats written before this run, the upper bound (the age of the beat it shows; both bounds noted on stderr)." default:"nagios" enum:"nagios,pgpool"`
}

// Plugin statuses (Nagios plugin API).
const (
	statusOK = iota
	statusWarning
	statusCritical
	statusUnknown
)

var statusNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// Run returns the plugin status as an exitStatus error, which main turns
// into the process's exit code (a plugin must be able to say 3, UNKNOWN,
// for a bad configuration). check returns only after every component has
// stopped.
func (c *checkCmd) Run(ctx context.Context, s streams) error {
	if code := c.check(ctx, s); code != statusOK {
		return exitStatus(code)
	}
	return nil
}

// check measures once and prints the result; it returns the exit status.
func (c *checkCmd) check(ctx context.Context, s streams) int {
	unknown := func(msg string) int {
		if c.Format == "pgpool" {
			fmt.Fprintln(s.err, "walprobe:", msg)
		} else {
			fmt.Fprintf(s.out, "WALPROBE UNKNOWN - %s\n", oneLine(msg))
		}
		return statusUnknown
	}
	cfg, err := c.validate()
	if err != nil {
		return unknown(err.Error())
	}
	var bad []string
	if len(cfg.targets) == 0 {
		bad = append(bad, "no targets: give --standby, --subscriber or --endpoint NAME=DSN")
	}
	if c.Warning <= 0 || c.Critical <= 0 || c.Warning > c.Critical {
		bad = append(bad, fmt.Sprintf("--warning %s, --critical %s: want 0 < warning <= critical", c.Warning, c.Critical))
	}
	if c.Timeout <= 0 {
		bad = append(bad, fmt.Sprintf("--timeout %s: must be positive", c.Timeout))
	}
	if len(bad) > 0 {
		return unknown(strings.Join(bad, "; "))
	}
	// A one-shot run serves nothing and times the read targets only: a
	// temporary logical slot per invocation costs the primary more than
	// the check is worth.
	cfg.listen, cfg.stream = "127.0.0.1:0", false
	// A primary that rejects the probe leaves nothing to measure: UNKNOWN
	// with its reason. A target that does is down: CRITICAL with its
	// reason, beside the verdicts of the others.
	cfg.failFast.primary = true

	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	a, err := build(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return unknown(err.Error())
	}
	// The newest beat written before this run, read before the writer
	// starts: targets that have not shown it are behind more than this run
	// can time (behind.go). A failed read only loses that knowledge.
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	prior, priorAt, skew, havePrior, _ := readRow(pctx, "primary", cfg.primary, cfg.probe.ProbeID)
	pcancel()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.run(rctx) }()
	snap, err, stopped := c.measure(ctx, a.probe, done)
	stop()
	if !stopped {
		err = <-done
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return unknown(err.Error())
	}
	var bh map[string]behind
	if havePrior {
		// Past --timeout on purpose: a bounded read of the rows the
		// lagging targets show, after measuring has ended.
		bctx, bcancel := context.WithTimeout(parent, 2*time.Second)
		bh = behindTargets(bctx, cfg, snap, row{seq: prior, written: priorAt.Add(-skew)}, skew)
		bcancel()
	}
	now := time.Now()
	if c.Format == "pgpool" {
		lines, notes := pgpoolLines(cfg, snap, bh, now)
		fmt.Fprint(s.out, lines)
		fmt.Fprint(s.err, notes)
		return statusOK
	}
	line, code := c.report(snap, bh, now)
	fmt.Fprintln(s.out, line)
	return code
}

// measure polls the probe until every target is judged or ctx ends, and
// returns the last snapshot. It also stops when the app does (done is then
// drained and its error returned).
func (c *checkCmd) measure(ctx context.Context, p *probe.Probe, done <-chan error) (probe.Snapshot, error, bool) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		snap := p.Snapshot()
		if c.settled(snap) {
			return snap, nil, false
		}
		select {
		case <-ctx.Done():
			return p.Snapshot(), nil, false
		case err := <-done:
			return p.Snapshot(), err, true
		case <-tick.C:
		}
	}
}

// settled reports whether more waiting cannot change any target's verdict:
// each has a timed beat, is down or promoted, or already lags past
// --critical (the beat it has not shown will be at least that late).
func (c *checkCmd) settled(snap probe.Snapshot) bool {
	for _, t := range snap.Targets {
		switch {
		case t.BeatsTimed > 0 && t.Delay != nil:
		case t.State == probe.StateDown || t.State == probe.StatePromoted:
		case t.Lag != nil && *t.Lag >= c.Critical:
		default:
			return false
		}
	}
	return true
}

// behindTargets reads the row each target that showed none of this run's
// beats shows, and returns the bounds for those that had not shown last
// either, by target name. A target whose row cannot be read is judged by
// what the probe timed.
func behindTargets(ctx context.Context, cfg *config, snap probe.Snapshot, last row, skew time.Duration) map[string]behind {
	lagging := map[string]bool{}
	for _, t := range snap.Targets {
		if _, b, _ := delayOf(t, nil, time.Time{}); b == basisLag {
			lagging[t.Name] = true
		}
	}
	bh := map[string]behind{}
	for _, spec := range cfg.targets {
		if !lagging[spec.name] {
			continue
		}
		seq, written, _, ok, err := readRow(ctx, spec.name, spec.conn, cfg.probe.ProbeID)
		if err != nil {
			continue
		}
		shown := row{} // no row: it has shown no beat of this probe id
		if ok {
			shown = row{seq: seq, written: written.Add(-skew)}
		}
		if b, ok := behindOf(last, shown); ok {
			bh[spec.name] = b
		}
	}
	return bh
}

// verdict is one target's result.
type verdict struct {
	name   string
	delay  time.Duration
	ok     bool // delay is known
	status int
	text   string
}

// judge turns a target snapshot into a verdict; see delayOf for the delay.
func (c *checkCmd) judge(t probe.TargetSnapshot, b *behind, now time.Time) verdict {
	v := verdict{name: t.Name}
	switch {
	case t.State == probe.StateDown:
		v.status, v.text = statusCritical, t.Name+" down"
		if t.LastError != "" {
			v.text += ": " + oneLine(t.LastError)
		}
		return v
	case t.State == probe.StatePromoted:
		v.status, v.text = statusCritical, t.Name+" promoted: no longer a replica"
		return v
	}
	var how basis
	v.delay, how, v.ok = delayOf(t, b, now)
	switch how {
	case basisNone:
		v.status, v.text = statusCritical, t.Name+" not measured within --timeout"
		return v
	case basisTimed:
		v.text = fmt.Sprintf("%s delay %s", t.Name, fmtSeconds(v.delay))
	case basisLag:
		v.text = fmt.Sprintf("%s showed no beat, lag %s", t.Name, fmtSeconds(v.delay))
	case basisBehind:
		v.text = fmt.Sprintf("%s behind: lag %s (not shown: beat %d, written before this run)", t.Name, fmtSeconds(v.delay), b.unshown.seq)
	case basisAtLeast:
		v.text = t.Name + " behind: " + atLeastText(v.delay, *b, now)
	}
	switch {
	case v.delay >= c.Critical:
		v.status = statusCritical
		v.text += " >= " + c.Critical.String()
	case v.delay >= c.Warning:
		v.status = statusWarning
		v.text += " >= " + c.Warning.String()
	}
	return v
}

// basis says how a target's delay is known.
type basis int

const (
	basisNone    basis = iota // not known: down, promoted or never polled
	basisTimed                // the last timed beat's delay
	basisLag                  // the age of this run's oldest beat it has not shown
	basisBehind               // the age of the one beat before this run it has not shown
	basisAtLeast              // a lower bound: the age of the newest beat before this run
)

// delayOf returns the target's delay and how it is known. A target that
// showed none of this run's beats has lag, the age of the oldest beat it
// has not shown: this run's first, unless b says it had not shown a beat
// written before the run either (behind.go). ok is false when the delay is
// not known.
func delayOf(t probe.TargetSnapshot, b *behind, now time.Time) (d time.Duration, how basis, ok bool) {
	switch {
	case t.State == probe.StateDown || t.State == probe.StatePromoted:
		return 0, basisNone, false
	case t.BeatsTimed > 0 && t.Delay != nil:
		// A beat visible before its ack reached the probe has delay 0 for
		// a plugin (pgpool reads -1 as "down").
		return max(*t.Delay, 0), basisTimed, true
	case t.Lag == nil:
		return 0, basisNone, false
	case b == nil:
		return *t.Lag, basisLag, true
	}
	// The beat before the run is older than any of the run's own, so this
	// is the larger; max only guards against clock steps.
	d = max(*t.Lag, b.lower(now))
	if b.unshown.seq == b.shown.seq+1 {
		// The newest beat before the run is the first one it has not
		// shown: its age is the lag itself.
		return d, basisBehind, true
	}
	return d, basisAtLeast, true
}

// atLeastText says what is known of a lower-bounded lag, for the plugin
// line and pgpool's stderr.
func atLeastText(d time.Duration, b behind, now time.Time) string {
	if up, ok := b.upper(now); ok {
		return fmt.Sprintf("lag at least %s, under %s (shows beat %d, not %d; when %d was written is not recorded)",
			fmtSeconds(d), fmtSeconds(up), b.shown.seq, b.unshown.seq, b.shown.seq+1)
	}
	return fmt.Sprintf("lag at least %s (shows no beat, not %d; when beat 1 was written is not recorded)", fmtSeconds(d), b.unshown.seq)
}

// report builds the plugin line: worst targets first in the summary, every
// target in the perfdata.
func (c *checkCmd) report(snap probe.Snapshot, bh map[string]behind, now time.Time) (string, int) {
	code := statusOK
	var worst, rest, perf []string
	if snap.Beats == 0 {
		code = statusCritical
		msg := "primary: no beat written"
		if snap.Primary.Error != "" {
			msg += ": " + oneLine(snap.Primary.Error)
		}
		worst = append(worst, msg)
	}
	for _, t := range snap.Targets {
		v := c.judge(t, lookup(bh, t.Name), now)
		code = max(code, v.status)
		if v.status != statusOK {
			worst = append(worst, v.text)
		} else {
			rest = append(rest, v.text)
		}
		val := "U"
		if v.ok {
			val = fmtSeconds(v.delay)
		}
		perf = append(perf, fmt.Sprintf("'%s_delay'=%s;%s;%s;0", v.name, val,
			strconv.FormatFloat(c.Warning.Seconds(), 'f', -1, 64), strconv.FormatFloat(c.Critical.Seconds(), 'f', -1, 64)))
	}
	summary := strings.Join(append(worst, rest...), ", ")
	return fmt.Sprintf("WALPROBE %s - %s | %s", statusNames[code], summary, strings.Join(perf, " ")), code
}

// lookup returns a pointer to bh[name], or nil.
func lookup(bh map[string]behind, name string) *behind {
	if b, ok := bh[name]; ok {
		return &b
	}
	return nil
}

// pgpoolLines prints one delay in milliseconds per --standby, in the order
// given, for pgpool's replication_delay_source_cmd. -1 is pgpool's
// convention for a standby that cannot be measured (down, promoted, never
// polled). A delay known only within bounds is printed as its upper bound,
// the age of the beat the standby shows (failing safe for read routing),
// with both bounds in a note for stderr.
func pgpoolLines(cfg *config, snap probe.Snapshot, bh map[string]behind, now time.Time) (lines, notes string) {
	by := map[string]probe.TargetSnapshot{}
	for _, t := range snap.Targets {
		by[t.Name] = t
	}
	var b, n strings.Builder
	for _, spec := range cfg.targets {
		if spec.kind != probe.KindStandby {
			continue
		}
		bp := lookup(bh, spec.name)
		d, how, ok := delayOf(by[spec.name], bp, now)
		if !ok {
			b.WriteString("-1\n")
			continue
		}
		if how == basisAtLeast {
			fmt.Fprintf(&n, "walprobe: %s: %s\n", spec.name, atLeastText(d, *bp, now))
			// pgpool routes reads on this number: give the upper bound,
			// the age of the beat the standby shows, so a standby hours
			// behind reads hours (within one beat's spacing), and an
			// uncertain one is kept out of rotation rather than in.
			if up, ok := bp.upper(now); ok {
				d = up
			}
		}
		fmt.Fprintf(&b, "%d\n", d.Milliseconds())
	}
	return b.String(), n.String()
}

func fmtSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 4, 64) + "s"
}

// oneLine keeps a message on the plugin's single output line.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "|", "/") // | starts perfdata
}
