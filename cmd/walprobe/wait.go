package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/api"
)

// waitCmd is a deploy gate: it blocks until every selected target's true
// lag is at most --max-lag. It takes all of run's flags (like doctor), so
// a run command line or config file works as it is, and runs the same
// components in process (writer, probe, readers); or, with --from, it
// asks a running walprobe's /v1/throttle instead.
type waitCmd struct {
	runCmd
	MaxLag  time.Duration `name:"max-lag" help:"Wait until every selected target's true lag is at most this (required)." placeholder:"DURATION"`
	Timeout time.Duration `help:"Give up (exit 1) after this long." default:"10m"`
	From    string        `help:"Ask the walprobe serving at this URL (its /v1/throttle) instead of connecting to the servers, e.g. http://db-probe:9187." placeholder:"URL"`
	Target  []string      `help:"Wait for this target (repeatable; default: every standby, subscriber and endpoint)." placeholder:"NAME" sep:"none"`
	Kind    []string      `help:"Wait for every target of this kind (repeatable): standby, subscriber, endpoint or stream." placeholder:"KIND" enum:"standby,subscriber,endpoint,stream"`
}

func (*waitCmd) Help() string {
	return `Blocks until every selected target's true lag is at most --max-lag, printing the worst target and its lag to stderr every few seconds. Exit status 0 when reached, 1 on --timeout, 2 for bad input. A target that is down, not measured yet, promoted, or whose lag is unknown (the primary cannot be written) has not reached it.

Without --from it connects itself, with the same flags and config file as run: it writes beats under --probe-id (default: the hostname with -wait, so it never shares a running probe's heartbeat row) and times them on every target until the lags are known. With --from it asks a running walprobe.

Examples:

    # a migration step: wait for the replicas before the next one
    walprobe wait --max-lag 2s --timeout 10m --primary 'postgres://walprobe@db1/app' \
        --standby replica1='postgres://walprobe@db2/app'

    # ask the walprobe already watching the cluster
    walprobe wait --from http://db-probe:9187 --max-lag 2s --target replica1`
}

// progressEvery is how often wait prints where it stands.
const progressEvery = 2 * time.Second

func (c *waitCmd) Run(ctx context.Context, s streams) error {
	var bad []string
	if c.MaxLag <= 0 {
		bad = append(bad, fmt.Sprintf("--max-lag %s: required, a positive duration such as 2s", c.MaxLag))
	}
	if c.Timeout <= 0 {
		bad = append(bad, fmt.Sprintf("--timeout %s: must be positive, e.g. 10m", c.Timeout))
	}
	if c.From != "" {
		if u, err := url.Parse(c.From); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad = append(bad, fmt.Sprintf("--from %q: want the URL of a running walprobe, e.g. http://db-probe:9187", c.From))
		}
		if c.Primary != "" {
			bad = append(bad, "--from and --primary: give one (--from asks a running walprobe; --primary connects itself)")
		}
	}
	if len(bad) > 0 {
		return configErrorf("%s", strings.Join(bad, "; "))
	}
	sel := api.ThrottleSelection{Names: c.Target}
	for _, k := range c.Kind {
		sel.Kinds = append(sel.Kinds, probe.Kind(k))
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if c.From != "" {
		return c.loop(ctx, s, 250*time.Millisecond, func(ctx context.Context) (api.ThrottleBody, int, error) {
			return c.askFrom(ctx, sel)
		})
	}
	return c.inProcess(ctx, s, sel)
}

// inProcess runs run's components (no stream unless asked for) and judges
// the probe's snapshots as the throttle does.
func (c *waitCmd) inProcess(ctx context.Context, s streams, sel api.ThrottleSelection) error {
	if c.ProbeID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "walprobe"
		}
		c.ProbeID = h + "-wait"
	}
	cfg, err := c.validate()
	if err != nil {
		return err
	}
	// The stream needs a temporary logical slot: only when waited for.
	cfg.stream = slices.Contains(sel.Kinds, probe.KindStream) || slices.Contains(sel.Names, "stream")
	names := map[string]bool{"stream": cfg.stream}
	for _, t := range cfg.targets {
		names[t.name] = true
	}
	for _, n := range sel.Names {
		if !names[n] {
			return configErrorf("--target %s: no such target: name one given with --standby, --subscriber or --endpoint", n)
		}
	}
	// Nothing is served; the port is bound only because wire binds one.
	cfg.listen = "127.0.0.1:0"
	level := c.LogLevel
	if level == "info" { // wait's own progress lines are its info
		level = "warn"
	}
	a, err := build(ctx, cfg, newLogger(s.err, level, c.LogFormat))
	if err != nil {
		return err
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.run(rctx) }()
	err = c.loop(ctx, s, 100*time.Millisecond, func(context.Context) (api.ThrottleBody, int, error) {
		picked, err := sel.Pick(a.probe.Snapshot().Targets)
		if err != nil {
			return api.ThrottleBody{}, 0, configErrorf("%w", err)
		}
		b, code := api.ThrottleVerdict(picked, c.MaxLag)
		return b, code, nil
	})
	stop()
	if rerr := <-done; rerr != nil && !errors.Is(rerr, context.Canceled) && err == nil {
		err = rerr
	}
	return err
}

// loop asks judge every poll until it answers 200 (nil), ctx ends
// (exit 1) or it fails for good (a config error: exit 2). A judge error
// that is not a configError (walprobe unreachable) is progress, not the end.
func (c *waitCmd) loop(ctx context.Context, s streams, poll time.Duration, judge func(context.Context) (api.ThrottleBody, int, error)) error {
	start := time.Now()
	var last string
	var lastPrint time.Time
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		b, code, err := judge(ctx)
		var cfgErr *configError
		switch {
		case errors.As(err, &cfgErr):
			return err
		case err != nil:
			last = err.Error()
		case code == http.StatusOK:
			fmt.Fprintf(s.err, "walprobe wait: reached after %s: %s\n", time.Since(start).Round(time.Millisecond), b.Reason)
			return nil
		default:
			last = b.Reason
		}
		if time.Since(lastPrint) >= progressEvery {
			fmt.Fprintf(s.err, "walprobe wait: %s: %s\n", time.Since(start).Round(time.Second), last)
			lastPrint = time.Now()
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(s.err, "walprobe wait: not reached within %s: %s\n", c.Timeout, last)
			return exitStatus(1)
		case <-tick.C:
		}
	}
}

// askFrom asks a running walprobe's /v1/throttle. 400 and 404 (a bad
// name or kind) are config errors; anything else unexpected is retried.
func (c *waitCmd) askFrom(ctx context.Context, sel api.ThrottleSelection) (api.ThrottleBody, int, error) {
	q := url.Values{"max_lag": {c.MaxLag.String()}}
	for _, n := range sel.Names {
		q.Add("target", n)
	}
	for _, k := range sel.Kinds {
		q.Add("kind", string(k))
	}
	u := strings.TrimRight(c.From, "/") + "/v1/throttle?" + q.Encode()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return api.ThrottleBody{}, 0, configErrorf("--from %s: %w", c.From, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return api.ThrottleBody{}, 0, fmt.Errorf("ask %s: %w", c.From, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return api.ThrottleBody{}, 0, fmt.Errorf("read the answer of %s: %w", c.From, err)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		var b api.ThrottleBody
		if err := json.Unmarshal(body, &b); err != nil {
			return api.ThrottleBody{}, 0, fmt.Errorf("%s answered %d with no throttle body (is it walprobe?): %w", c.From, resp.StatusCode, err)
		}
		return b, resp.StatusCode, nil
	case http.StatusBadRequest, http.StatusNotFound:
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return api.ThrottleBody{}, 0, configErrorf("%s: %s", c.From, e.Error)
		}
		return api.ThrottleBody{}, 0, configErrorf("%s answered %s for /v1/throttle: is it a walprobe with the throttle (0.x or later)?", c.From, resp.Status)
	}
	return api.ThrottleBody{}, 0, fmt.Errorf("%s answered %s", c.From, resp.Status)
}
