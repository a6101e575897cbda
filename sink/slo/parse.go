package slo

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/walprobe/walprobe/probe"
)

// kinds are the selector words that name a kind of target.
var kinds = map[string]probe.Kind{
	"standby": probe.KindStandby, "subscriber": probe.KindSubscriber,
	"endpoint": probe.KindEndpoint, "stream": probe.KindStream,
}

// ParseObjectives parses SELECTOR=OBJECTIVE[@THRESHOLD][/WINDOW] entries
// (the --slo grammar) against the known targets (name → kind), reporting
// every bad entry at once. Each error starts with source, where the user
// wrote the entries (e.g. "--slo"), and the quoted entry: it holds no
// secret.
//
// SELECTOR is a target name, a kind (standby, subscriber, endpoint,
// stream), * for every target, or the explicit target:NAME and kind:KIND;
// a bare kind word is the kind even when a target has that name.
// OBJECTIVE is a fraction (0.999) or a percentage (99.9%); THRESHOLD a Go
// duration, defThreshold when left out; WINDOW a Go duration or whole
// days (28d), 1h to 90d, Config.Window when left out.
func ParseObjectives(source string, specs []string, defThreshold time.Duration, targets map[string]probe.Kind) ([]Objective, error) {
	var objs []Objective
	var errs []error
	seen := map[string]string{} // selector key → entry that set it
	for _, spec := range specs {
		o, err := ParseObjective(spec, defThreshold, targets)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", source, spec, err))
			continue
		}
		key := o.Target + "\x00" + string(o.Kind)
		if prev, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s %q: selects the same targets as %q: keep one", source, spec, prev))
			continue
		}
		seen[key] = spec
		objs = append(objs, o)
	}
	return objs, errors.Join(errs...)
}

// ParseObjective parses one SELECTOR=OBJECTIVE[@THRESHOLD][/WINDOW]
// entry; see ParseObjectives.
func ParseObjective(spec string, defThreshold time.Duration, targets map[string]probe.Kind) (Objective, error) {
	var o Objective
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
		if days, err := strconv.Atoi(n); err == nil && days > 0 && time.Duration(days)*24*time.Hour <= maxWindow {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= time.Hour && d <= maxWindow {
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
