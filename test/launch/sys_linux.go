package launch

import (
	"syscall"
)

// sysProcAttr kills the child when the test process dies (a panic, a
// timeout's SIGQUIT, kill -9), so no walprobe outlives its test. Pdeathsig
// follows the thread that forked; Go keeps that thread alive unless a
// goroutine locked to it exits, which the harness never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
