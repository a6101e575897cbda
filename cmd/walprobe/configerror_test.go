package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/walprobe/walprobe/heartbeat"
)

// TestConfigErrorWraps: a configError (exit status 2) keeps the lower
// layer's error reachable, so callers can still tell why with errors.Is
// and errors.As, and prints the same text.
func TestConfigErrorWraps(t *testing.T) {
	inner := fmt.Errorf("primary (h:5432/db): %w", heartbeat.ErrNotSetUp)
	for _, err := range []error{&configError{inner}, configErrorf("--primary: %w", inner)} {
		if !errors.Is(err, heartbeat.ErrNotSetUp) {
			t.Errorf("errors.Is(%q, heartbeat.ErrNotSetUp) = false", err)
		}
		var ce *configError
		if !errors.As(fmt.Errorf("run: %w", err), &ce) {
			t.Errorf("errors.As(%q, *configError) = false", err)
		}
	}
	if got, want := (&configError{inner}).Error(), inner.Error(); got != want {
		t.Errorf("Error() = %q, want the wrapped text %q", got, want)
	}
}
