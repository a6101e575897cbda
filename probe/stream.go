package probe

import (
	"time"

	"github.com/walprobe/walprobe/heartbeat"
)

// Streamed reports beat seq read off the logical stream: it reached the
// probe in (after, s.Received], then the split of its trip. A beat the
// stream saw before the writer's ack is held and timed when the ack lands.
// It is the method set walstream.Target asks of a target, so that
// walstream does not import probe.
func (t *Target) Streamed(seq int64, after time.Time, s heartbeat.StreamStages) {
	t.Seen(seq, after, s.Received)
	s.Seq = seq
	t.Stages(s)
}
