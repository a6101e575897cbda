package probe

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// readerDiag is what a Reader keeps across sessions to check them and to
// diagnose a target that shows no beats. Only the reader's Run goroutine
// touches it.
type readerDiag struct {
	// admitted is set once a session passed checkSession with the role
	// check: from then on a standby out of recovery was promoted (a
	// failover), not given by mistake.
	admitted bool
	// sub is the subscriber diagnosis state (diagnose.go).
	sub subDiag
}

// admitTimeout bounds the session check.
const admitTimeout = 5 * time.Second

// admit checks a new session the way Preflight checks a target at
// start-up: version, role (until a session has passed it), read grant.
// A failure is the reason the target is down; the connection is closed.
// Checking every session, not only the first, makes a target that is
// misconfigured at start-up and one that becomes so later the same state.
func (r *Reader) admit(ctx context.Context, conn *pgx.Conn) error {
	cctx, cancel := context.WithTimeout(ctx, admitTimeout)
	defer cancel()
	if err := checkSession(cctx, r.cfg.Name, r.cfg.Kind, r.cfg.Conn, conn, !r.diag.admitted); err != nil {
		closeConn(conn)
		return err
	}
	r.diag.admitted = true
	return nil
}
