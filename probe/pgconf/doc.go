// Package pgconf turns user-supplied DSNs into connection configs that are
// safe for a probe: every session gets short statement, lock and
// idle-in-transaction timeouts and TCP keepalives, and every error that
// leaves this package names the target, never its password.
//
// It also translates the PostgreSQL errors an operator can fix (wrong
// password, pg_hba rejection, missing database, missing privilege) into one
// actionable line.
package pgconf
