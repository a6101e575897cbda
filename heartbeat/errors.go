package heartbeat

import "errors"

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
