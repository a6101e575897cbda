package fakes

import (
	"context"
	"testing"
	"time"
)

// WaitFor polls cond every 50 ms until it holds, and fails the test naming
// what it waited for once d has passed or ctx is done.
func WaitFor(ctx context.Context, t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			if cond() {
				return
			}
			t.Fatalf("timed out after %s waiting for %s", d, what)
		case <-tick.C:
		}
	}
}
