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
	Format   string        `help:"nagios: one status line with perfdata. pgpool: one delay in ms per --standby per line, -1 when not measured." default:"nagios" enum:"nagios,pgpool"`
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

	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	a, err := build(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return unknown(err.Error())
	}
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
	if c.Format == "pgpool" {
		fmt.Fprint(s.out, pgpoolLines(cfg, snap))
		return statusOK
	}
	line, code := c.report(snap)
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
		case t.Lag != nil && float64(*t.Lag) >= c.Critical.Seconds():
		default:
			return false
		}
	}
	return true
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
func (c *checkCmd) judge(t probe.TargetSnapshot) verdict {
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
	var timed bool
	v.delay, timed, v.ok = delayOf(t)
	switch {
	case !v.ok:
		v.status, v.text = statusCritical, t.Name+" not measured within --timeout"
		return v
	case timed:
		v.text = fmt.Sprintf("%s delay %s", t.Name, fmtSeconds(v.delay))
	default:
		v.text = fmt.Sprintf("%s showed no beat, lag %s", t.Name, fmtSeconds(v.delay))
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

// delayOf returns the target's delay: the last timed beat's (timed), else
// its current lag, the age of the oldest beat it has not shown and a lower
// bound on that beat's delay. ok is false for a target that is down,
// promoted or was never polled.
func delayOf(t probe.TargetSnapshot) (d time.Duration, timed, ok bool) {
	switch {
	case t.State == probe.StateDown || t.State == probe.StatePromoted:
		return 0, false, false
	case t.BeatsTimed > 0 && t.Delay != nil:
		// A beat visible before its ack reached the probe has delay 0 for
		// a plugin (pgpool reads -1 as "down").
		return max(seconds(*t.Delay), 0), true, true
	case t.Lag != nil:
		return seconds(*t.Lag), false, true
	}
	return 0, false, false
}

// report builds the plugin line: worst targets first in the summary, every
// target in the perfdata.
func (c *checkCmd) report(snap probe.Snapshot) (string, int) {
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
		v := c.judge(t)
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

// pgpoolLines prints one delay in milliseconds per --standby, in the order
// given, for a pgpool health script. -1 is that script's convention for a
// standby that cannot be measured (down, promoted, never polled).
func pgpoolLines(cfg *config, snap probe.Snapshot) string {
	by := map[string]probe.TargetSnapshot{}
	for _, t := range snap.Targets {
		by[t.Name] = t
	}
	var b strings.Builder
	for _, spec := range cfg.targets {
		if spec.kind != probe.KindStandby {
			continue
		}
		d, _, ok := delayOf(by[spec.name])
		if !ok {
			b.WriteString("-1\n")
			continue
		}
		fmt.Fprintf(&b, "%d\n", d.Milliseconds())
	}
	return b.String()
}

func seconds(s probe.Seconds) time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

func fmtSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 4, 64) + "s"
}

// oneLine keeps a message on the plugin's single output line.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "|", "/") // | starts perfdata
}
