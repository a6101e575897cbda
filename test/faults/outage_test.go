package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/api"
	"github.com/walprobe/walprobe/test/cluster"
)

// Only the probe is cut off from the primary (a blackhole on the writer's
// path; the primary and replication are fine): the caught-up standby goes
// unknown, never lagging with a fake climb, its ready check keeps
// answering 200 (reads keep flowing) and 503 with strict=true; once the
// path is back it is healthy (issue 16.1, 16.2).
func TestWriterBlackholeIsUnknown(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	x := newToxi(t)
	px := x.proxy(t, "primary", c.Primary.Port)
	pdsn := strings.Replace(c.Primary.SuperDSN(), fmt.Sprintf("port=%d", c.Primary.Port), fmt.Sprintf("port=%d", px.Port), 1)
	const interval = 200 * time.Millisecond
	p, rec := runProbe(ctx, t, pdsn, c.Standbys[0].SuperDSN(), interval)
	mux := http.NewServeMux()
	mux.Handle(api.ReadyPattern, api.Ready(p))
	ready := func(q string) (int, api.ReadyBody) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", "/v1/targets/standby1/ready?max_lag=1s"+q, nil))
		var b api.ReadyBody
		_ = json.Unmarshal(w.Body.Bytes(), &b)
		return w.Code, b
	}
	state := func() probe.TargetSnapshot { return p.Snapshot().Targets[0] }
	wait := func(d time.Duration, what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if cond() {
				return
			}
		}
		t.Fatalf("timed out after %v waiting for %s; target %+v", d, what, state())
	}
	wait(15*time.Second, "standby1 healthy", func() bool { return state().State == probe.StateHealthy })

	tox := px.add(t, "timeout", "upstream", map[string]any{"timeout": 0})
	cut := time.Now()
	wait(5*time.Second, "standby1 unknown", func() bool { return state().State == probe.StateUnknown })
	t.Logf("unknown %v after the writer's path was blackholed", time.Since(cut).Round(time.Millisecond))
	for time.Since(cut) < 6*time.Second {
		s := state()
		if s.State != probe.StateUnknown || s.Lag != nil || s.LagUpperBound == nil {
			t.Fatalf("during the blackhole: state %s lag %v upper bound %v, want unknown, null, set", s.State, s.Lag, s.LagUpperBound)
		}
		if code, b := ready(""); code != 200 || !b.LagUnknown {
			t.Fatalf("ready during the blackhole = %d %+v, want 200 with lag_unknown", code, b)
		}
		if code, _ := ready("&strict=true"); code != 503 {
			t.Fatalf("strict ready during the blackhole = %d, want 503", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ub := state().LagUpperBound; ub == nil || *ub < 5*time.Second {
		t.Errorf("lag upper bound after 6 s = %v, want ≥ 5 s", ub)
	}
	px.remove(t, tox)
	wait(30*time.Second, "standby1 healthy again", func() bool { return state().State == probe.StateHealthy })
	_, states := rec.snapshot()
	for _, s := range states {
		if s == probe.StateLagging || s == probe.StateStalled || s == probe.StateDown {
			t.Errorf("states %v: a writer cut off from the primary made a caught-up standby %s", states, s)
			break
		}
	}
}
