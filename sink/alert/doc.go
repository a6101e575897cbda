// Package alert is walprobe's one vocabulary for alerts: the [Alert] type
// every source emits and every transport sends, the alert names and
// severities, and the rules that turn the probe's state into alerts
// ([Rules]: a target down or promoted, the logical stream's slot lost, a
// lag over the warning or critical threshold).
//
// Sources: Rules here, and sink/slo's burn-rate alerts. Transport:
// sink/webhook. Rules are level-triggered: they report each condition
// every time they evaluate it (a lag over the threshold on every tick, a
// resolve whenever it is under), and the transport keeps one firing
// notification per [Alert.Key] until it resolves, so a notification lost
// on a full queue is sent again at the next evaluation.
//
// It delivers nothing itself and imports only the probe and the shared
// leaf sink: it is the one sink other sinks may import (test/lint's rules
// table says so), because sources and transports must share the type
// without importing each other.
package alert
