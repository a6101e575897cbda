package cluster

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interrupt closes the clusters StartT started when the test binary gets
// SIGINT or SIGTERM (Ctrl-C on go test). Go's default is to exit at once,
// skipping t.Cleanup: the servers would die by their parent-death signal,
// but their directories (tens of MB per server) would stay in /tmp. Start
// alone installs nothing; its other caller (the demo) owns signal handling.
var interrupt struct {
	mu   sync.Mutex            // guards the fields below
	live map[*Cluster]struct{} // clusters to close on a signal
	stop chan struct{}         // ends the watcher; nil while none runs
	done chan struct{}         // closed when the watcher returned
}

// watchInterrupt adds c to the clusters closed on a signal, starting the
// watcher for the first one. The returned func removes c and stops the
// watcher after the last one, so no goroutine outlives the clusters.
func watchInterrupt(c *Cluster) (unwatch func()) {
	interrupt.mu.Lock()
	defer interrupt.mu.Unlock()
	if interrupt.live == nil {
		interrupt.live = make(map[*Cluster]struct{})
	}
	interrupt.live[c] = struct{}{}
	if interrupt.stop == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		stop, done := make(chan struct{}), make(chan struct{})
		interrupt.stop, interrupt.done = stop, done
		go func() {
			defer close(done)
			defer signal.Stop(ch)
			select {
			case <-stop:
			case sig := <-ch:
				closeLive()
				// Die of the signal as the process would have without us.
				signal.Reset(sig)
				_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
			}
		}()
	}
	return func() {
		interrupt.mu.Lock()
		delete(interrupt.live, c)
		var stop, done chan struct{}
		if len(interrupt.live) == 0 && interrupt.stop != nil {
			stop, done = interrupt.stop, interrupt.done
			interrupt.stop, interrupt.done = nil, nil
		}
		interrupt.mu.Unlock()
		if stop != nil {
			close(stop)
			<-done
		}
	}
}

// closeLive closes every watched cluster.
func closeLive() {
	interrupt.mu.Lock()
	var live []*Cluster
	for c := range interrupt.live {
		live = append(live, c)
	}
	interrupt.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range live {
		wg.Go(func() { _ = c.Close() })
	}
	wg.Wait()
}
