package alert

import (
	"time"

	"github.com/walprobe/walprobe/probe"
)

// Alert is one alert changing state. Name and Target form its key.
type Alert struct {
	Name      string // e.g. target_down, slo_fast_burn_1h
	Target    string
	Kind      probe.Kind // empty when not known
	Severity  string     // e.g. warning, critical, page, ticket
	Summary   string
	Firing    bool      // false: resolved
	StartedAt time.Time // when it began firing; zero: the transport fills it
	EndedAt   time.Time // when it resolved; zero while firing
}

// Key identifies an alert across its changes: its name and target.
func (a Alert) Key() string { return a.Name + "\x00" + a.Target }

// Status is "firing" or "resolved".
func (a Alert) Status() string {
	if a.Firing {
		return "firing"
	}
	return "resolved"
}

// Alert names.
const (
	TargetDown     = "target_down"
	TargetPromoted = "target_promoted"
	LagWarning     = "lag_warning"
	LagCritical    = "lag_critical"
	// StreamSlotLost fires when the logical stream loses the temporary
	// slot it was streaming from and resolves when a new slot streams.
	StreamSlotLost = "stream_slot_lost"
	// PrimaryUnreachable fires once, for the primary, while the
	// heartbeat writer cannot write: caught-up targets are then unknown
	// rather than lagging, so this one alert replaces a lag alert per
	// target.
	PrimaryUnreachable = "primary_unreachable"
)

// Severities.
const (
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
	// SeverityPage and SeverityTicket are the SLO burn-rate alerts'
	// (SRE workbook): page someone now, or file a ticket.
	SeverityPage   = "page"
	SeverityTicket = "ticket"
)
