package localcluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Each fault helper changes a real server and returns once the server's own
// views show the change, so the caller can measure right after it.

// setConf sets a parameter with ALTER SYSTEM, reloads, and waits until new
// sessions see want in pg_settings.setting (in the parameter's base unit).
// The reload is asynchronous: pg_reload_conf only signals the postmaster.
func (s *Server) setConf(ctx context.Context, name, value, want string) error {
	// ALTER SYSTEM takes no bind parameters. On error the server would log
	// the statement, so the error here names only the parameter.
	if err := s.Exec(ctx, "ALTER SYSTEM SET "+name+" = "+quoteLiteral(value)); err != nil {
		return fmt.Errorf("set %s on %s: %w", name, s.Name, err)
	}
	if err := s.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload %s: %w", s.Name, err)
	}
	err := poll(ctx, name+" reloaded on "+s.Name, func() (bool, string, error) {
		got, err := s.Scalar(ctx, "SELECT setting FROM pg_settings WHERE name = $1", name)
		if err != nil {
			return false, err.Error(), nil
		}
		// Not the value itself: primary_conninfo holds the password.
		return got == want, "old value", nil
	})
	if err != nil {
		return fmt.Errorf("set %s on %s: %w", name, s.Name, err)
	}
	return nil
}

// CutReceiver stops s's WAL receiver by clearing primary_conninfo: the
// standby keeps serving reads but receives nothing until RestoreReceiver.
// It returns once pg_stat_wal_receiver is empty.
func (c *Cluster) CutReceiver(ctx context.Context, s *Server) error {
	if err := s.requireStandby(); err != nil {
		return fmt.Errorf("cut receiver: %w", err)
	}
	if err := s.setConf(ctx, "primary_conninfo", "", ""); err != nil {
		return fmt.Errorf("cut receiver: %w", err)
	}
	if err := s.WaitScalar(ctx, "0", "SELECT count(*) FROM pg_stat_wal_receiver"); err != nil {
		return fmt.Errorf("cut receiver: %w", err)
	}
	c.env.logf("%s: wal receiver cut", s.Name)
	return nil
}

// RestoreReceiver puts s's original primary_conninfo back and returns once
// its WAL receiver is streaming again.
func (c *Cluster) RestoreReceiver(ctx context.Context, s *Server) error {
	if err := s.requireStandby(); err != nil {
		return fmt.Errorf("restore receiver: %w", err)
	}
	if err := s.setConf(ctx, "primary_conninfo", s.primaryConninfo, s.primaryConninfo); err != nil {
		return fmt.Errorf("restore receiver: %w", err)
	}
	if err := s.WaitScalar(ctx, "streaming", "SELECT coalesce(max(status), 'absent') FROM pg_stat_wal_receiver"); err != nil {
		return fmt.Errorf("restore receiver: %w", err)
	}
	c.env.logf("%s: wal receiver streaming again", s.Name)
	return nil
}

// PauseReplay pauses WAL replay on s (WAL is still received) and returns
// once pg_get_wal_replay_pause_state() says paused.
func (c *Cluster) PauseReplay(ctx context.Context, s *Server) error {
	if err := s.requireStandby(); err != nil {
		return fmt.Errorf("pause replay: %w", err)
	}
	if err := s.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		return fmt.Errorf("pause replay: %w", err)
	}
	// PostgreSQL 15 confirms a pause while waiting for WAL too (seen
	// within a poll here), but the startup process only looks at the
	// request between records or wakeups. If it still says "pause
	// requested" after a second, write a little WAL on the primary to
	// wake it; waiting would never end on an idle primary otherwise.
	begin := time.Now()
	err := poll(ctx, "replay paused on "+s.Name, func() (bool, string, error) {
		got, err := s.Scalar(ctx, "SELECT pg_get_wal_replay_pause_state()")
		if err != nil {
			return false, err.Error(), nil
		}
		if got == "paused" {
			return true, got, nil
		}
		if time.Since(begin) < time.Second {
			return false, got, nil
		}
		if err := c.nudge(ctx); err != nil {
			return false, err.Error(), nil
		}
		return false, got, nil
	})
	if err != nil {
		return fmt.Errorf("pause replay: %w", err)
	}
	c.env.logf("%s: replay paused", s.Name)
	return nil
}

// nudge writes a tiny WAL record on the primary: a transactional logical
// message, flushed at commit, decoded by nobody (pgoutput skips messages
// unless asked for them).
func (c *Cluster) nudge(ctx context.Context) error {
	return c.Primary.Exec(ctx, "SELECT pg_logical_emit_message(true, 'walprobe_cluster', 'nudge')")
}

// ResumeReplay resumes WAL replay on s and returns once it is no longer
// paused.
func (c *Cluster) ResumeReplay(ctx context.Context, s *Server) error {
	if err := s.requireStandby(); err != nil {
		return fmt.Errorf("resume replay: %w", err)
	}
	if err := s.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		return fmt.Errorf("resume replay: %w", err)
	}
	if err := s.WaitScalar(ctx, "not paused", "SELECT pg_get_wal_replay_pause_state()"); err != nil {
		return fmt.Errorf("resume replay: %w", err)
	}
	c.env.logf("%s: replay resumed", s.Name)
	return nil
}

// SetApplyDelay sets recovery_min_apply_delay on s: each commit is replayed
// no sooner than d after its commit timestamp on the primary (same host, so
// same clock). d = 0 turns the delay off, and a replay already waiting
// re-reads the setting and goes on. Millisecond resolution.
func (c *Cluster) SetApplyDelay(ctx context.Context, s *Server, d time.Duration) error {
	if err := s.requireStandby(); err != nil {
		return fmt.Errorf("set apply delay: %w", err)
	}
	if d < 0 {
		return fmt.Errorf("set apply delay on %s: negative delay %v", s.Name, d)
	}
	ms := strconv.FormatInt(d.Milliseconds(), 10)
	if err := s.setConf(ctx, "recovery_min_apply_delay", ms+"ms", ms); err != nil {
		return fmt.Errorf("set apply delay: %w", err)
	}
	c.env.logf("%s: apply delay %v", s.Name, d)
	return nil
}

// DisableSubscription disables walprobe_sub and returns once its apply
// worker is gone and the primary's slot is inactive.
func (c *Cluster) DisableSubscription(ctx context.Context) error {
	return c.setSubscription(ctx, "DISABLE", "0", "f")
}

// EnableSubscription enables walprobe_sub and returns once its apply worker
// runs and holds the primary's slot.
func (c *Cluster) EnableSubscription(ctx context.Context) error {
	return c.setSubscription(ctx, "ENABLE", "1", "t")
}

func (c *Cluster) setSubscription(ctx context.Context, verb, workers, active string) error {
	if c.Subscriber == nil {
		return errors.New("subscription: the cluster has no subscriber (set Options.Subscriber)")
	}
	if err := c.Subscriber.Exec(ctx, "ALTER SUBSCRIPTION "+SubscriptionName+" "+verb); err != nil {
		return fmt.Errorf("%s subscription: %w", verb, err)
	}
	// relid IS NULL: the apply worker, not a table sync worker.
	err := c.Subscriber.WaitScalar(ctx, workers,
		"SELECT count(pid) FROM pg_stat_subscription WHERE subname = $1 AND relid IS NULL", SubscriptionName)
	if err != nil {
		return fmt.Errorf("%s subscription: %w", verb, err)
	}
	err = c.Primary.WaitScalar(ctx, active,
		"SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = $1", SubscriptionName)
	if err != nil {
		return fmt.Errorf("%s subscription: %w", verb, err)
	}
	c.env.logf("subscription %s: %s", SubscriptionName, verb)
	return nil
}

// Promote promotes standby s with pg_promote(wait => true) and returns once
// it has left recovery. The other standbys keep following the old primary.
func (c *Cluster) Promote(ctx context.Context, s *Server) error {
	if err := s.requireStandby(); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	got, err := s.Scalar(ctx, "SELECT pg_promote(wait => true, wait_seconds => 30)")
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if got != "t" {
		return fmt.Errorf("promote %s: still in recovery after 30 s", s.Name)
	}
	c.env.logf("%s: promoted", s.Name)
	return nil
}
