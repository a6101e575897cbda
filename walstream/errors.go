package walstream

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

// Setup problems an operator must fix on the primary. Errors reported
// through Target.Down match them with errors.Is and carry the fix in
// their text.
var (
	// ErrWalLevel means wal_level is below logical: no logical slot can exist.
	ErrWalLevel = errors.New("wal_level is not logical")
	// ErrNoReplicationRole means the role lacks the REPLICATION attribute.
	ErrNoReplicationRole = errors.New("role lacks REPLICATION")
	// ErrNoPublication means the publication is missing or does not hold
	// the heartbeat table.
	ErrNoPublication = errors.New("publication missing")
	// ErrSlotsExhausted means max_replication_slots slots are all in use.
	ErrSlotsExhausted = errors.New("replication slots exhausted")
	// ErrSendersExhausted means max_wal_senders walsenders are all running.
	ErrSendersExhausted = errors.New("wal senders exhausted")
)

// setupError is an actionable message that matches both its sentinel and
// the server's error.
type setupError struct {
	msg  string
	kind error
	err  error
}

func (e *setupError) Error() string   { return e.msg }
func (e *setupError) Unwrap() []error { return []error{e.kind, e.err} }

// explain turns an error met while connecting or streaming into one
// password-free line naming the target and the fix. It is pure so the
// classification is tested without a server.
func explain(name string, cfg *pgx.ConnConfig, err error) error {
	if err == nil {
		return nil
	}
	var se *setupError
	if errors.As(err, &se) {
		return err
	}
	where, user := name, ""
	if cfg != nil {
		where = fmt.Sprintf("%s (%s)", name, pgconf.Addr(cfg))
		user = cfg.User
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		if strings.Contains(err.Error(), "all replication slots are in use") {
			return slotsExhausted(where, err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			// What a restart, crash or failover of the primary looks like
			// from the stream.
			return &pgconf.Error{Target: name, Msg: fmt.Sprintf("%s: the primary closed the replication connection (restart, crash or terminated walsender); reconnecting", where), Err: err}
		}
		return pgconf.Explain(name, cfg, err)
	}
	text := strings.ToLower(pe.Message + " " + pe.Detail)
	switch {
	case pe.Code == "42501" && (strings.Contains(text, "replication") || strings.Contains(text, "wal sender") || strings.Contains(text, "walsender")):
		// PostgreSQL ≤ 15: "must be superuser or replication role to start
		// walsender"; 16+: "permission denied to start WAL sender" with a
		// detail naming the REPLICATION attribute.
		return &setupError{
			msg:  fmt.Sprintf("%s: role %q may not open a replication connection: run `ALTER ROLE %s REPLICATION` as a superuser (superuser is not needed)", where, user, heartbeat.QuoteIdent(user)),
			kind: ErrNoReplicationRole, err: err,
		}
	case pe.Code == "53400" || strings.Contains(text, "all replication slots are in use"):
		return slotsExhausted(where, err)
	case strings.Contains(text, "max_wal_senders"):
		// 53300 "number of requested standby connections exceeds
		// max_wal_senders (currently N)".
		return &setupError{
			msg:  fmt.Sprintf("%s: all wal senders are busy (%s): raise max_wal_senders in postgresql.conf and restart the primary, or stop an unused replication client", where, pe.Message),
			kind: ErrSendersExhausted, err: err,
		}
	case strings.Contains(text, "wal_level"):
		return walLevelError(where, err)
	case pe.Code == "42704" && strings.Contains(text, "publication"):
		return &setupError{
			msg:  fmt.Sprintf("%s: %s: %s", where, pe.Message, publicationFix(heartbeat.Publication)),
			kind: ErrNoPublication, err: err,
		}
	}
	return pgconf.Explain(name, cfg, err)
}

func slotsExhausted(where string, err error) error {
	return &setupError{
		msg:  fmt.Sprintf("%s: all replication slots are in use: raise max_replication_slots in postgresql.conf and restart the primary, or drop an unused slot (SELECT slot_name, active FROM pg_replication_slots)", where),
		kind: ErrSlotsExhausted, err: err,
	}
}

func walLevelError(where string, err error) error {
	return &setupError{
		msg:  fmt.Sprintf("%s: logical decoding needs wal_level = logical: set wal_level = logical in postgresql.conf and restart the primary", where),
		kind: ErrWalLevel, err: err,
	}
}

// publicationFix says how to create publication pub with the heartbeat
// table in it.
func publicationFix(pub string) string {
	if pub == heartbeat.Publication {
		return fmt.Sprintf("run `walprobe setup` on the primary, or as an administrator `CREATE PUBLICATION %s FOR TABLE %s`", pub, heartbeat.QualTable)
	}
	return fmt.Sprintf("as an administrator run `CREATE PUBLICATION %s FOR TABLE %s` (or `ALTER PUBLICATION %s ADD TABLE %s` if it exists), or use the default publication %s created by `walprobe setup`",
		heartbeat.QuoteIdent(pub), heartbeat.QualTable, heartbeat.QuoteIdent(pub), heartbeat.QualTable, heartbeat.Publication)
}
