package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/alert"
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
	got, err := slo.ParseObjectives("--slo", f.SLO, f.SLOThreshold, targets)
	errs = append(errs, err)
	for _, o := range got {
		if o.Target == "" && o.Kind == "" && f.SLOObjective != 0 {
			errs = append(errs, errors.New("--slo '*=…' and --slo-objective both set the default objective: keep one"))
		}
		objs = append(objs, o)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, &configError{err}
	}
	if len(objs) == 0 {
		return nil, nil
	}
	if f.SLOWindow < time.Hour || f.SLOWindow > 90*24*time.Hour {
		return nil, configErrorf("--slo-window %s: must be between 1h and 2160h (90 days), e.g. 672h", f.SLOWindow)
	}
	if err := (slo.Config{Objectives: objs, Window: f.SLOWindow}).Validate(); err != nil {
		return nil, &configError{err}
	}
	return objs, nil
}

// add wires the webhook notifier and the SLO evaluator into a.
func (f alertFlags) add(a *app, logger *slog.Logger, flush time.Duration) error {
	var notify func(alert.Alert)
	if f.WebhookURL != "" {
		wh, werr := webhook.New(webhook.Config{
			URL: f.WebhookURL, Secret: f.WebhookSecret, Format: webhook.Format(f.WebhookFormat),
			DrainTimeout: flush,
		}, logger)
		notify = func(x alert.Alert) { wh.Notify(x) }
		rules, rerr := alert.New(alert.Config{LagWarning: f.AlertLagWarn, LagCritical: f.AlertLagCrit, Notify: notify}, a.probe)
		if err := errors.Join(werr, rerr); err != nil {
			return &configError{err}
		}
		a.probe.Observe(rules)
		a.webhook, a.alerts = wh, rules
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
			return &configError{err}
		}
		a.probe.Observe(s)
		a.slo = s
	}
	return nil
}
