package probe

// Unmeasurable reports that the target answers but cannot show beats
// until someone acts (the heartbeat table missing, not subscribed, not
// synchronised): state down with reason, lag unknown. A lag would only
// grow for as long as the fault lasts and look measured.
func (t *Target) Unmeasurable(reason string) {
	t.mu.Lock()
	t.lastErr = reason
	// Forget the position: Lag is unknown, and the next poll that can
	// measure places the target afresh.
	t.known = false
	if t.state == StateDown {
		// Down already (for another reason): the state stays, its
		// reason is now this one.
		changed := t.reason != reason
		t.reason = reason
		t.mu.Unlock()
		if changed {
			t.p.logger.Warn("target state", "target", t.name, "kind", string(t.kind), "from", string(StateDown), "to", string(StateDown), "reason", reason)
		}
		return
	}
	t.mu.Unlock()
	t.fire(EventConnLost, reason)
}

// Waiting reports that the target will show beats by itself once it has
// caught up with the table's creation (a standby that has not replayed
// it yet): one connecting state with reason, no error. From down it
// connects; from a measured state it cannot be waiting, so it is down.
func (t *Target) Waiting(reason string) {
	t.mu.Lock()
	switch t.state {
	case StateConnecting:
		changed := t.reason != reason
		t.reason, t.lastErr, t.known = reason, "", false
		t.mu.Unlock()
		if changed {
			t.p.logger.Info("target waiting", "target", t.name, "kind", string(t.kind), "reason", reason)
		}
	case StateDown:
		t.lastErr, t.known = "", false
		t.mu.Unlock()
		t.fire(EventConnected, reason)
	default:
		t.mu.Unlock()
		t.Unmeasurable(reason)
	}
}

// Measurable reports that a target that was unmeasurable or waiting can
// show beats again: from down it is connecting, and the next poll places
// it.
func (t *Target) Measurable() {
	if t.State() == StateDown {
		t.fire(EventConnected, "the heartbeat table can be read")
	}
}

// SetCause names why a target's lag grows (a disabled subscription, a
// failing apply worker) in its state reason while it is lagging or
// stalled; "" removes it.
func (t *Target) SetCause(cause string) {
	t.mu.Lock()
	st := t.state
	if st != StateLagging && st != StateStalled {
		t.mu.Unlock()
		return
	}
	before := t.reason
	t.reason = withCause(t.reason, cause)
	changed := t.reason != before
	t.mu.Unlock()
	if changed && cause != "" {
		t.p.logger.Warn("target lags", "target", t.name, "kind", string(t.kind), "cause", cause)
	}
}
