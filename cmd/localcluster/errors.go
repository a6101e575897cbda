package localcluster

import (
	"errors"
	"fmt"
)

// MissingBinaryError reports a program the harness needs but cannot find.
// Start reports every missing program at once, joined with [errors.Join];
// find one with [errors.As].
type MissingBinaryError struct {
	Name string // program, e.g. "initdb"
	Path string // where the harness looked
	Fix  string // how to get it, e.g. `install it with "apt-get install -y pgbouncer"`
}

func (e *MissingBinaryError) Error() string {
	return fmt.Sprintf("%s not found at %s: %s", e.Name, e.Path, e.Fix)
}

// ErrNull is returned by [Server.Scalar] when the query returned SQL NULL.
var ErrNull = errors.New("query returned NULL")

// ErrNotStandby is returned by the standby fault helpers when given a server
// that was not made with pg_basebackup (the primary or the subscriber).
var ErrNotStandby = errors.New("not a standby")
