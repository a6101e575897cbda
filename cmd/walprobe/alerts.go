package main

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/slo"
	"github.com/walprobe/walprobe/sink/webhook"
)

// alertFlags configure synthetic lag SLOs and webhook alerts.
type alertFlags struct {
	SLO             []string      `help:"Lag SLO for one target, one kind or every target (repeatable): SELECTOR=OBJECTIVE[@THRESHOLD][/WINDOW], e.g. replica1=0.999@500ms, standby=99%@2s/7d, '*=0.99@1s'. SELECTOR is a target name, standby, subscriber, endpoint, stream or * (target:NAME and kind:KIND are explicit forms); THRESHOLD defaults to --slo-threshold, WINDOW to --slo-window. A target uses the objective naming it, else its kind's, else *." name:"slo" placeholder:"SELECTOR=OBJECTIVE@THRESHOLD[/WINDOW]" sep:"none"`
	SLOObjective    float64       `help:"Fraction of beats that must be visible within --slo-threshold on every target, e.g. 0.999 (0: no default SLO); the same as --slo '*=OBJECTIVE'." name:"slo-objective" placeholder:"RATIO"`
	SLOThreshold    time.Duration `help:"Largest visibility delay of a good beat, for --slo-objective and --slo entries without @THRESHOLD." name:"slo-threshold" default:"500ms"`
	SLOWindow       time.Duration `help:"Rolling SLO window (error budget), for --slo-objective and --slo entries without /WINDOW." name:"slo-window" default:"672h"`
	SLOEvalInterval time.Duration `help:"How often SLO burn rates are evaluated (alerts fire and resolve on this tick)." name:"slo-eval-interval" default:"10s"`
	WebhookURL      string        `help:"POST alerts here (lag thresholds, SLO burn, target down or promoted, stream slot lost). Its path and query are treated as secret." name:"webhook-url" placeholder:"URL"`
	WebhookSecret   string        `help:"Shared secret for the X-Walprobe-Signature HMAC-SHA256 header (prefer WALPROBE_WEBHOOK_SECRET)." name:"webhook-secret" placeholder:"SECRET"`
	WebhookFormat   string        `help:"walprobe, alertmanager or slack." name:"webhook-format" default:"walprobe" enum:"walprobe,alertmanager,slack"`
	AlertLagWarn    time.Duration `help:"Alert lag_warning while a target's lag is at or over this (0: off)." name:"alert-lag-warning" default:"5s"`
	AlertLagCrit    time.Duration `help:"Alert lag_critical while a target's lag is at or over this (0: off)." name:"alert-lag-critical" default:"30s"`
}

// check parses the SLO flags against the configured targets before
// anything connects, so a bad --slo is one config error (exit 2).
func (f alertFlags) check(cfg *config) error {
	_, err := f.objectives(cfg)
	return err
}

// objectives turns --slo-objective and every --slo into sink/slo
// objectives; none means no SLO.
func (f alertFlags) objectives(cfg *config) ([]slo.Objective, error) {
	targets := map[string]probe.Kind{}
	for _, t := range cfg.targets {
		targets[t.name] = t.kind
	}
	if cfg.stream {
		targets["stream"] = probe.KindStream
	}
	var errs []error
	if f.SLOThreshold <= 0 {
		errs = append(errs, fmt.Errorf("--slo-threshold %s: must be positive, e.g. 500ms", f.SLOThreshold))
	}
	if f.SLOEvalInterval <= 0 {
		errs = append(errs, fmt.Errorf("--slo-eval-interval %s: must be positive, e.g. 10s", f.SLOEvalInterval))
	}
	var objs []slo.Objective
	if f.SLOObjective != 0 {
		if !(f.SLOObjective > 0 && f.SLOObjective < 1) {
			errs = append(errs, fmt.Errorf("--slo-objective %v: must be between 0 and 1 exclusive, e.g. 0.999", f.SLOObjective))
		} else {
			objs = append(objs, slo.Objective{Objective: f.SLOObjective, Threshold: f.SLOThreshold})
		}
	}
	got, err := parseSLOs(f.SLO, f.SLOThreshold, targets)
	errs = append(errs, err)
	for _, o := range got {
		if o.Target == "" && o.Kind == "" && f.SLOObjective != 0 {
			errs = append(errs, errors.New("--slo '*=…' and --slo-objective both set the default objective: keep one"))
		}
		objs = append(objs, o)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, &configError{msg: err.Error()}
	}
	if len(objs) == 0 {
		return nil, nil
	}
	if f.SLOWindow < time.Hour || f.SLOWindow > 90*24*time.Hour {
		return nil, &configError{msg: fmt.Sprintf("--slo-window %s: must be between 1h and 2160h (90 days), e.g. 672h", f.SLOWindow)}
	}
	if err := (slo.Config{Objectives: objs, Window: f.SLOWindow}).Validate(); err != nil {
		return nil, &configError{msg: err.Error()}
	}
	return objs, nil
}

// kinds are the selector words that name a kind of target.
var kinds = map[string]probe.Kind{
	"standby": probe.KindStandby, "subscriber": probe.KindSubscriber,
	"endpoint": probe.KindEndpoint, "stream": probe.KindStream,
}

// parseSLOs parses SELECTOR=OBJECTIVE[@THRESHOLD][/WINDOW] entries against
// the known targets (name → kind), reporting every bad entry at once.
// Errors quote the entry: it holds no secret.
func parseSLOs(specs []string, defThreshold time.Duration, targets map[string]probe.Kind) ([]slo.Objective, error) {
	var objs []slo.Objective
	var errs []error
	seen := map[string]string{} // selector key → entry that set it
	for _, spec := range specs {
		o, err := parseSLO(spec, defThreshold, targets)
		if err != nil {
			errs = append(errs, fmt.Errorf("--slo %q: %w", spec, err))
			continue
		}
		key := o.Target + "\x00" + string(o.Kind)
		if prev, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("--slo %q: selects the same targets as %q: keep one", spec, prev))
			continue
		}
		seen[key] = spec
		objs = append(objs, o)
	}
	return objs, errors.Join(errs...)
}

func parseSLO(spec string, defThreshold time.Duration, targets map[string]probe.Kind) (slo.Objective, error) {
	var o slo.Objective
	sel, rest, ok := strings.Cut(spec, "=")
	sel, rest = strings.TrimSpace(sel), strings.TrimSpace(rest)
	if !ok || sel == "" || rest == "" {
		return o, errors.New("want SELECTOR=OBJECTIVE[@THRESHOLD][/WINDOW], e.g. replica1=0.999@500ms or standby=99%@2s/7d")
	}
	switch explicit, name, _ := strings.Cut(sel, ":"); {
	case sel == "*":
	case explicit == "kind" && name != "":
		k, ok := kinds[name]
		if !ok {
			return o, fmt.Errorf("unknown kind %q: want standby, subscriber, endpoint or stream", name)
		}
		o.Kind = k
	case explicit == "target" && name != "":
		k, ok := targets[name]
		if !ok {
			return o, noTarget(name, targets)
		}
		o.Target, o.Kind = name, k
	case kinds[sel] != "":
		// A bare kind word is the kind, also when a target has that name
		// (select it with target:NAME); the stream target is the one
		// target of kind stream either way.
		o.Kind = kinds[sel]
	default:
		k, ok := targets[sel]
		if !ok {
			return o, noTarget(sel, targets)
		}
		o.Target, o.Kind = sel, k
	}

	rest, window, hasWindow := strings.Cut(rest, "/")
	ratio, threshold, hasThreshold := strings.Cut(rest, "@")
	var errs []error
	v, err := parseRatio(strings.TrimSpace(ratio))
	if err != nil {
		errs = append(errs, err)
	}
	o.Objective = v
	o.Threshold = defThreshold
	if hasThreshold {
		d, err := time.ParseDuration(strings.TrimSpace(threshold))
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("threshold %q: want a positive duration such as 500ms or 2s", threshold))
		}
		o.Threshold = d
	}
	if hasWindow {
		d, err := parseWindow(strings.TrimSpace(window))
		if err != nil {
			errs = append(errs, err)
		}
		o.Window = d
	}
	return o, errors.Join(errs...)
}

// parseRatio reads 0.999 or 99.9% as a fraction strictly between 0 and 1.
func parseRatio(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if pct {
		v /= 100
	}
	if err != nil || !(v > 0 && v < 1) {
		return 0, fmt.Errorf("objective %q: want a fraction between 0 and 1 exclusive (0.999) or a percentage (99.9%%)", s)
	}
	return v, nil
}

// parseWindow reads a Go duration or a whole number of days (28d).
func parseWindow(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days > 0 && days <= 90 {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= time.Hour && d <= 90*24*time.Hour {
		return d, nil
	}
	return 0, fmt.Errorf("window %q: want 1h to 90d, e.g. 28d or 168h", s)
}

func noTarget(name string, targets map[string]probe.Kind) error {
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	known := "none configured"
	if len(names) > 0 {
		known = strings.Join(names, ", ")
	}
	return fmt.Errorf("no target named %q (targets: %s; kinds: standby, subscriber, endpoint, stream; or *)", name, known)
}

// add wires the webhook notifier and the SLO evaluator into a.
func (f alertFlags) add(a *app, logger *slog.Logger, flush time.Duration) error {
	var notify func(slo.Alert)
	if f.WebhookURL != "" {
		wh, err := webhook.New(webhook.Config{
			URL: f.WebhookURL, Secret: f.WebhookSecret, Format: webhook.Format(f.WebhookFormat),
			LagWarning: f.AlertLagWarn, LagCritical: f.AlertLagCrit,
			DrainTimeout: flush,
		}, a.probe, logger)
		if err != nil {
			return &configError{msg: err.Error()}
		}
		a.probe.Observe(wh)
		a.runs = append(a.runs, wh.Run)
		notify = func(x slo.Alert) {
			wh.Notify(webhook.Alert{Name: x.Name, Target: x.Target, Severity: x.Severity, Summary: x.Summary,
				Firing: x.Firing, StartedAt: x.StartedAt, EndedAt: x.EndedAt})
		}
	}
	objs, err := f.objectives(a.cfg)
	if err != nil {
		return err
	}
	if len(objs) > 0 {
		s, err := slo.New(slo.Config{
			Objectives: objs,
			Window:     f.SLOWindow,
			EvalEvery:  f.SLOEvalInterval,
			OnAlert:    notify,
		}, a.probe, a.mp, logger)
		if err != nil {
			return &configError{msg: err.Error()}
		}
		a.probe.Observe(s)
		a.runs = append(a.runs, s.Run)
	}
	return nil
}
