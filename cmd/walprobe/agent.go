package main

import (
	"log/slog"
	"time"

	"github.com/walprobe/walprobe/sink/agent"
)

// agentFlags serve HAProxy agent checks (sink/agent).
type agentFlags struct {
	AgentListen string        `help:"TCP address for HAProxy agent checks: HAProxy sends a target name (agent-send \"NAME\\n\") and gets its weight by true lag, drain over --agent-max-lag, down when the target is down (off when empty)." name:"agent-listen" placeholder:"ADDR"`
	AgentMaxLag time.Duration `help:"Lag at which the agent answers drain; the weight is 100% up to a quarter of it, falling to 1% at it (default: --lag-threshold)." name:"agent-max-lag" placeholder:"DURATION"`
}

// add builds the agent into a and binds its port, so a bad --agent-listen
// is a config error before anything runs.
func (f agentFlags) add(a *app, logger *slog.Logger) error {
	if f.AgentListen == "" {
		if f.AgentMaxLag != 0 {
			return configErrorf("--agent-max-lag needs --agent-listen")
		}
		return nil
	}
	if f.AgentMaxLag < 0 {
		return configErrorf("--agent-max-lag %s: must be positive, e.g. 2s", f.AgentMaxLag)
	}
	s, err := agent.New(f.AgentListen, f.AgentMaxLag, a.probe, logger)
	if err != nil {
		return &configError{err}
	}
	if err := s.Listen(); err != nil {
		return configErrorf("--agent-listen %s: %w", f.AgentListen, err)
	}
	a.agent = s
	return nil
}
