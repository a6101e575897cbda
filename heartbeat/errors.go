package heartbeat

import (
	"errors"
	"fmt"
)

// ErrNotSetUp means the heartbeat table is missing on the primary and the
// probe's role may not create it. Its message carries the SQL to run.
var ErrNotSetUp = errors.New("heartbeat table is not set up")

// ErrInRecovery means the DSN given as the primary points at a server in
// recovery (a standby): beats cannot be written there.
var ErrInRecovery = errors.New("primary is in recovery")

// ErrNoPrivilege means the primary's role lacks a grant the writer needs
// (USAGE on the schema; SELECT, INSERT and UPDATE on the table). Its
// message carries the GRANTs to run.
var ErrNoPrivilege = errors.New("missing privilege on the heartbeat table")

// ErrProbeIDConflict means another writer upserts the same heartbeat row:
// two probes run with one probe_id against one primary. Each makes the
// other's seq jump, and the beats and lags both report are unreliable.
// It is wrapped by [*ProbeIDConflictError], which says where and by how much.
var ErrProbeIDConflict = errors.New("another writer shares the heartbeat row")

// ProbeIDConflictError reports a seq jump seen on an unbroken connection:
// after acking From, the writer's next upsert returned To > From+1, so
// someone else wrote the row in between. It unwraps to [ErrProbeIDConflict].
type ProbeIDConflictError struct {
	ProbeID string
	Primary string // host:port/db, from pgconf.Addr
	From    int64  // the last seq this writer acked on the connection
	To      int64  // the seq its next upsert returned
}

func (e *ProbeIDConflictError) Error() string {
	return fmt.Sprintf("another walprobe is writing the heartbeat row of probe id %q on %s (seq jumped from %d to %d): give each probe its own --probe-id",
		e.ProbeID, e.Primary, e.From, e.To)
}

func (e *ProbeIDConflictError) Unwrap() error { return ErrProbeIDConflict }
