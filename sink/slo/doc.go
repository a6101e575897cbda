// Package slo turns the probe's beats into synthetic lag SLOs: for each
// target, the ratio of beats made visible within a threshold, their burn
// rate over the SRE workbook's windows, and multi-window multi-burn-rate
// alerts.
//
// A beat is good when it became visible within the objective's Threshold
// and bad otherwise. A beat that is never shown (a stalled or down target)
// produces no Visibility, so [SLO.Evaluate] counts it from the target's
// current lag: every beat the probe acked more than Threshold ago and the
// target has not shown is counted bad once, at the first evaluation that
// sees it overdue, assuming beats at the probe's interval. A beat shown
// later, after it was counted bad, is not counted again.
//
// Memory is fixed per target: a ring of one-minute buckets covers the
// windows up to 6h, a ring of one-hour buckets covers 1d, 3d and the
// objective's rolling window (28 days is 672 buckets). Hourly windows move
// in whole hours.
//
// Objectives select targets by name, by kind, or as the default; each may
// have its own compliance window. Every series is labelled with the
// target, its kind and the objective judging it (objective, threshold,
// compliance_window), so a burn rate always says what it burns against.
// [ParseObjectives] reads them from SELECTOR=OBJECTIVE[@THRESHOLD][/WINDOW]
// entries (walprobe run --slo).
//
// The package does not deliver alerts; it calls Config.OnAlert with an
// alert.Alert, which cmd wires to a notifier such as sink/webhook.
//
// It may import probe (read-only), heartbeat, sink/alert and the shared
// leaf sink, never another sink (test/lint keeps that).
package slo
