package faults

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/walprobe/walprobe/test/launch"
)

// toxiproxy v2.12.0 can leave a no-op toxic's pipe goroutine blocked on a
// channel send when a toxic is added to a link that its proxy then stops
// (toxics/noop.go, created by ToxicLink.AddToxic): the library's
// goroutine, not walprobe's, and it holds no connection to a server. Every
// other goroutine still fails the run.
var toxiproxyPipe = goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*NoopToxic).Pipe")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(launch.Cleanup), toxiproxyPipe)
}
