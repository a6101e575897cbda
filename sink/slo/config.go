package slo

import (
	"errors"
	"fmt"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/alert"
)

// Objective is one lag SLO. Target or Kind select the targets it applies
// to; both empty makes it the default. A target uses the objective naming
// it, else the one for its kind, else the default; a target none applies
// to is not tracked.
type Objective struct {
	Target string
	Kind   probe.Kind
	// Objective is the fraction of beats that must be good, e.g. 0.999.
	Objective float64
	// Threshold is the largest visibility delay of a good beat.
	Threshold time.Duration
	// Window is this objective's rolling compliance window (error
	// budget); zero uses Config.Window.
	Window time.Duration
}

// window returns o's compliance window, falling back to def.
func (o Objective) window(def time.Duration) time.Duration {
	if o.Window > 0 {
		return o.Window
	}
	return def
}

// Config configures an SLO.
type Config struct {
	Objectives []Objective
	// Window is the rolling compliance window of the error budget
	// (default 28 days, at most maxWindow).
	Window time.Duration
	// EvalEvery is how often Run evaluates lag and alerts (default 10s).
	EvalEvery time.Duration
	// OnAlert receives each alert when it fires and when it resolves. It
	// is called from Evaluate and must not block.
	OnAlert func(alert.Alert)
}

// maxWindow bounds the hourly ring: 90 days is 2160 buckets per target.
const maxWindow = 90 * 24 * time.Hour

// Defaults fills zero fields.
func (c *Config) Defaults() {
	if c.Window == 0 {
		c.Window = 28 * 24 * time.Hour
	}
	if c.EvalEvery == 0 {
		c.EvalEvery = 10 * time.Second
	}
}

// Validate reports every bad field at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Objectives) == 0 {
		errs = append(errs, errors.New("slo: no objectives: give at least one, e.g. 0.999 of beats within 500ms"))
	}
	seen := map[string]bool{}
	for i, o := range c.Objectives {
		key := o.Target + "\x00" + string(o.Kind)
		if seen[key] {
			errs = append(errs, fmt.Errorf("slo objective %d: duplicate selector target=%q kind=%q", i, o.Target, o.Kind))
		}
		seen[key] = true
		if !(o.Objective > 0 && o.Objective < 1) {
			errs = append(errs, fmt.Errorf("slo objective %d: objective %v: must be between 0 and 1 exclusive, e.g. 0.999", i, o.Objective))
		}
		if o.Threshold <= 0 {
			errs = append(errs, fmt.Errorf("slo objective %d: threshold %s: must be positive, e.g. 500ms", i, o.Threshold))
		}
		if o.Window != 0 && (o.Window < time.Hour || o.Window > maxWindow) {
			errs = append(errs, fmt.Errorf("slo objective %d: window %s: must be between 1h and %s", i, o.Window, maxWindow))
		}
	}
	if c.Window < time.Hour || c.Window > maxWindow {
		errs = append(errs, fmt.Errorf("slo window %s: must be between 1h and %s", c.Window, maxWindow))
	}
	if c.EvalEvery < 0 {
		errs = append(errs, fmt.Errorf("slo eval interval %s: must be positive", c.EvalEvery))
	}
	return errors.Join(errs...)
}

// objectiveFor picks the objective for a target, most specific first.
func (c Config) objectiveFor(target string, kind probe.Kind) (Objective, bool) {
	var byKind, def *Objective
	for i := range c.Objectives {
		o := &c.Objectives[i]
		switch {
		case o.Target != "" && o.Target == target && (o.Kind == "" || o.Kind == kind):
			return *o, true
		case o.Target == "" && o.Kind != "" && o.Kind == kind:
			byKind = o
		case o.Target == "" && o.Kind == "":
			def = o
		}
	}
	if byKind != nil {
		return *byKind, true
	}
	if def != nil {
		return *def, true
	}
	return Objective{}, false
}
