package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
)

type runCmd struct {
	probeFlags
	exportFlags
	LogLevel  string `help:"debug, info, warn or error." default:"info" enum:"debug,info,warn,error"`
	LogFormat string `help:"text or json." default:"text" enum:"text,json"`
	FailFast  bool   `help:"Exit with status 2 at start-up when a server rejects the probe or is not set up (pg_hba.conf, password, database, grants, role), instead of reporting it down and retrying." name:"fail-fast"`
	alertFlags

	// ListenAddrFile lets a supervisor or a test start walprobe on
	// --listen 127.0.0.1:0 and learn the port without parsing logs.
	ListenAddrFile string `help:"Once listening, write the bound --listen address (host:port) to this file (for --listen with port 0)." name:"listen-addr-file" placeholder:"FILE"`
	agentFlags
}

// probeFlags are the flags that describe what to watch; demo fills them
// itself.
type probeFlags struct {
	Primary      string        `help:"Primary DSN (libpq URI or key=value; PG* env and ~/.pgpass apply). List several hosts with target_session_attrs=read-write to follow a failover." placeholder:"DSN"`
	Standby      []string      `help:"Physical standby to time beats on (repeatable)." placeholder:"NAME=DSN" sep:"none"`
	Subscriber   []string      `help:"Logical subscriber that receives walprobe.heartbeat (repeatable)." placeholder:"NAME=DSN" sep:"none"`
	Endpoint     []string      `help:"Read endpoint: pgbouncer, pgpool, a cloud reader endpoint (repeatable)." placeholder:"NAME=DSN" sep:"none"`
	Interval     time.Duration `help:"Time between beats (>= 100ms)." default:"1s"`
	ProbeID      string        `help:"Stable id of this probe: its row in walprobe.heartbeat (default: hostname)." name:"probe-id"`
	Listen       string        `help:"HTTP address for the status page (/), /metrics, /v1/state, /v1/history, /healthz, /readyz." default:"127.0.0.1:9187"`
	Stream       bool          `help:"Time beats on the WAL stream with a temporary logical slot (role needs REPLICATION)." default:"true" negatable:""`
	LagThreshold time.Duration `help:"Lag at which a target is lagging (default: max(1s, 2 intervals))." placeholder:"DURATION"`
	StallAfter   time.Duration `help:"A target with beats outstanding that shows none for this long is stalled (default: max(10s, 5 intervals))." placeholder:"DURATION"`
	PasswordFile string        `help:"File whose first line is the password for the primary and every target that gets none from its DSN, PGPASSWORD or ~/.pgpass. Must not be readable by others (chmod 600)." name:"password-file" placeholder:"FILE"`
}

// targetSpec is one parsed NAME=DSN.
type targetSpec struct {
	name string
	kind probe.Kind
	conn *pgx.ConnConfig
}

// config is the validated form of probeFlags.
type config struct {
	primary *pgx.ConnConfig
	targets []targetSpec
	probe   probe.Config
	listen  string
	stream  bool
	// failFast turns what a server rejects at start-up into a
	// configError (preflight.go): for the primary, for the targets.
	failFast struct{ primary, targets bool }
}

// validate parses every DSN and checks every value, reporting all problems
// at once. Errors never carry a password.
func (f probeFlags) validate() (*config, error) {
	var errs []error
	c := &config{listen: f.Listen, stream: f.Stream}
	if f.Primary == "" {
		errs = append(errs, errors.New("--primary is required: the DSN of the read-write server (or set WALPROBE_PRIMARY)"))
	} else if cfg, err := pgconf.Parse("--primary", f.Primary); err != nil {
		errs = append(errs, err)
	} else {
		c.primary = cfg
	}
	if f.Interval < heartbeat.MinInterval {
		errs = append(errs, fmt.Errorf("--interval %s: must be at least %s", f.Interval, heartbeat.MinInterval))
	}
	id := f.ProbeID
	if id == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "walprobe"
		}
		id = h
	}
	seen := map[string]bool{"stream": f.Stream}
	for _, g := range []struct {
		flag  string
		kind  probe.Kind
		specs []string
	}{{"--standby", probe.KindStandby, f.Standby}, {"--subscriber", probe.KindSubscriber, f.Subscriber}, {"--endpoint", probe.KindEndpoint, f.Endpoint}} {
		for _, s := range g.specs {
			name, dsn, ok := strings.Cut(s, "=")
			name = strings.TrimSpace(name)
			if !ok || name == "" || strings.ContainsAny(name, " '\"/:@") {
				errs = append(errs, fmt.Errorf("%s: want NAME=DSN, e.g. %s replica1=postgres://walprobe@10.0.0.2/app", g.flag, g.flag))
				continue
			}
			if seen[name] {
				errs = append(errs, fmt.Errorf("%s %s: duplicate target name %q: give every target its own name", g.flag, name, name))
				continue
			}
			seen[name] = true
			cfg, err := pgconf.Parse(g.flag+" "+name, dsn)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			c.targets = append(c.targets, targetSpec{name: name, kind: g.kind, conn: cfg})
		}
	}
	if f.PasswordFile != "" {
		if pw, err := readPasswordFile(f.PasswordFile); err != nil {
			errs = append(errs, err)
		} else {
			fillPassword(pw, c.primary)
			for _, t := range c.targets {
				fillPassword(pw, t.conn)
			}
		}
	}
	c.probe = probe.Config{ProbeID: id, Interval: f.Interval, LagThreshold: f.LagThreshold, StallAfter: f.StallAfter}
	if err := errors.Join(errs...); err != nil {
		return nil, &configError{err}
	}
	return c, nil
}

func (r *runCmd) Run(ctx context.Context, s streams) error {
	logger := newLogger(s.err, r.LogLevel, r.LogFormat)
	cfg, err := r.validate()
	if err != nil {
		return err
	}
	cfg.failFast.primary, cfg.failFast.targets = r.FailFast, r.FailFast
	if err := r.alertFlags.check(cfg); err != nil {
		return err
	}
	a, err := build(ctx, cfg, logger, r.exports(s))
	if err != nil {
		return err
	}
	if err := r.alertFlags.add(a, logger, r.FlushTimeout); err != nil {
		return err
	}
	if err := r.agentFlags.add(a, logger); err != nil {
		return err
	}
	if r.ListenAddrFile != "" {
		if err := writeAddrFile(r.ListenAddrFile, a.http.Addr()); err != nil {
			// The path is not echoed: like every flag, it may hold a DSN
			// by mistake.
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return configErrorf("--listen-addr-file: cannot write the file: %w", err)
		}
	}
	return a.run(ctx)
}

// build checks every server once (preflight.go: a server that is
// unreachable or refuses the probe is a state, not an error, unless
// --fail-fast) and wires every component (app.go).
func build(ctx context.Context, cfg *config, logger *slog.Logger, ex ...exportOptions) (*app, error) {
	if err := preflight(ctx, cfg, logger); err != nil {
		return nil, err
	}
	return wire(ctx, cfg, logger, ex...)
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// writeAddrFile writes addr and a newline to path through a temporary file
// and a rename, so whoever polls for path never reads half an address.
func writeAddrFile(path, addr string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
