package main

import (
	"log/slog"
	"time"

	"github.com/walprobe/walprobe/sink/slo"
	"github.com/walprobe/walprobe/sink/webhook"
)

// alertFlags configure synthetic lag SLOs and webhook alerts.
type alertFlags struct {
	SLOObjective  float64       `help:"Fraction of beats that must be visible within --slo-threshold on every target, e.g. 0.999 (0: no SLO)." name:"slo-objective" placeholder:"RATIO"`
	SLOThreshold  time.Duration `help:"Largest visibility delay of a good beat." name:"slo-threshold" default:"500ms"`
	SLOWindow     time.Duration `help:"Rolling SLO window (error budget)." name:"slo-window" default:"672h"`
	WebhookURL    string        `help:"POST alerts here (lag thresholds, SLO burn, target down or promoted). Its path and query are treated as secret." name:"webhook-url" placeholder:"URL"`
	WebhookSecret string        `help:"Shared secret for the X-Walprobe-Signature HMAC-SHA256 header (prefer WALPROBE_WEBHOOK_SECRET)." name:"webhook-secret" placeholder:"SECRET"`
	WebhookFormat string        `help:"walprobe, alertmanager or slack." name:"webhook-format" default:"walprobe" enum:"walprobe,alertmanager,slack"`
	AlertLagWarn  time.Duration `help:"Alert lag_warning while a target's lag is at or over this (0: off)." name:"alert-lag-warning" default:"5s"`
	AlertLagCrit  time.Duration `help:"Alert lag_critical while a target's lag is at or over this (0: off)." name:"alert-lag-critical" default:"30s"`
}

// add wires the webhook notifier and the SLO evaluator into a.
func (f alertFlags) add(a *app, logger *slog.Logger) error {
	var notify func(slo.Alert)
	if f.WebhookURL != "" {
		wh, err := webhook.New(webhook.Config{
			URL: f.WebhookURL, Secret: f.WebhookSecret, Format: webhook.Format(f.WebhookFormat),
			LagWarning: f.AlertLagWarn, LagCritical: f.AlertLagCrit,
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
	if f.SLOObjective > 0 {
		s, err := slo.New(slo.Config{
			Objectives: []slo.Objective{{Objective: f.SLOObjective, Threshold: f.SLOThreshold}},
			Window:     f.SLOWindow,
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
