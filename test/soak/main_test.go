package soak

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/walprobe/walprobe/test/walprobebin"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { walprobebin.Remove() }))
}
