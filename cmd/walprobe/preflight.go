package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/probe"
)

// preflight checks the primary and every target once before the probe
// starts. What depends on a server (DNS, a refused connection, pg_hba.conf,
// a password, a database, a grant, a server of the wrong role) is a state
// the running probe reports with the same reason and retries: preflight
// only logs it, so one misconfigured replica does not stop the probe
// watching the others, and the outcome does not depend on whether the
// error shows before or after start-up. With --fail-fast it is a
// configError (exit 2), as it was before.
func preflight(ctx context.Context, cfg *config, logger *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := heartbeat.Check(cctx, cfg.primary)
	cancel()
	switch {
	case err == nil:
	case cfg.failFast.primary && serverRejects(err):
		return &configError{err}
	default:
		logger.Warn("primary not usable yet: the writer is down and retries until it is", "error", err.Error())
	}
	for _, t := range cfg.targets {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		up, err := probe.Preflight(pctx, t.name, t.kind, t.conn)
		cancel()
		switch {
		case err != nil && cfg.failFast.targets && serverRejects(err):
			return &configError{err}
		case err != nil:
			logger.Warn("target not usable yet: it is reported down and retried until it is", "target", t.name, "error", err.Error())
		case !up:
			logger.Warn("target not reachable yet; it is reported down until it is", "target", t.name)
		}
	}
	return nil
}

// serverRejects reports whether err is a server refusing the probe for a
// reason only a configuration change fixes (what --fail-fast exits on).
func serverRejects(err error) bool {
	return errors.Is(err, heartbeat.ErrNotSetUp) || errors.Is(err, heartbeat.ErrInRecovery) ||
		errors.Is(err, heartbeat.ErrNoPrivilege) || errors.Is(err, probe.ErrWrongRole) ||
		errors.Is(err, probe.ErrTooOld) || pgconf.Rejected(err)
}
