package pgconf

import (
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5/pgconn"
)

// NewBackoff returns the reconnect policy shared by every component:
// 100 ms doubling to a 5 s cap, ±50 % jitter, never giving up.
func NewBackoff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 5 * time.Second
	bo.RandomizationFactor = 0.5
	bo.MaxElapsedTime = 0
	bo.Reset()
	return bo
}

// NeedsReconnect reports whether err means the session is unusable, as
// opposed to a statement that failed on a healthy session.
func NeedsReconnect(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08 connection exceptions and 57P0x shutdowns, and
		// read-only transactions after a failover (25006).
		return pe.Code[:2] == "08" || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "25006"
	}
	return true // network errors, timeouts: reconnect to be safe
}

// Rejected reports whether err is a server refusing the probe for a reason
// only a configuration change fixes: pg_hba.conf (28000), a wrong password
// (28P01), a missing database (3D000), a missing privilege such as CONNECT
// on the database (42501). At start-up these are configuration
// errors; once running, the same errors are states (a password rotated
// under a running probe is retried, not fatal).
func Rejected(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28000", "28P01", "3D000", "42501":
			return true
		}
	}
	return false
}

// Cancelled reports whether err is a statement the server cancelled on a
// healthy session, for a reason that passes: a recovery conflict on a
// standby (40001), a statement or lock timeout or a cancel request
// (57014, 55P03), a deadlock (40P01). Retry the statement, not the
// connection.
func Cancelled(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "57014", "55P03":
			return true
		}
	}
	return false
}

// AuthRetry is the shortest wait before trying again after the server
// refused the probe's credentials or host (28P01, 28000): each attempt is
// a FATAL line in the server's log, and a rotated password is not fixed by
// retrying sooner.
const AuthRetry = 30 * time.Second

// AuthFailed reports whether err is the server refusing the login: a
// wrong password (28P01) or no pg_hba.conf entry (28000).
func AuthFailed(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000")
}

// NextRetry is how long to wait before retrying after err: the backoff's
// next interval, and at least AuthRetry after an authentication failure.
func NextRetry(bo *backoff.ExponentialBackOff, err error) time.Duration {
	d := bo.NextBackOff()
	if AuthFailed(err) {
		d = max(d, AuthRetry)
	}
	return d
}
