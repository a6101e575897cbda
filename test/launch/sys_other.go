//go:build !linux

package launch

import (
	"syscall"
)

// sysProcAttr: no parent-death signal outside Linux; the cleanup's
// SIGTERM and kill still stop the process when the test ends.
func sysProcAttr() *syscall.SysProcAttr { return nil }
