package tls

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/walprobe/walprobe/test/launch"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(launch.Cleanup))
}
