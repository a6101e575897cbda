package probe

// Streamed reports beat seq read off the logical stream: an exact
// observation at s.Received (the error bound is 0), then the split of its
// trip. It is the method set walstream.Target asks of a target, so that
// walstream does not import probe.
func (t *Target) Streamed(seq int64, s StreamStages) {
	t.Seen(seq, s.Received, s.Received)
	t.Stages(s)
}
