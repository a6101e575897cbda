package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/api"
	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/inproc"
)

// TestReadyFollowsStandby: the ready endpoint of a real standby turns 503
// within seconds of its WAL receiver being cut, while the standby still
// answers queries, and 200 again once it streams.
func TestReadyFollowsStandby(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 2})
	sb := c.Standbys[0]
	r := startProbe(ctx, t, c.Primary.DSN("walprobe"), "readytest", 200*time.Millisecond,
		inproc.Target{Name: "standby1", Kind: probe.KindStandby, DSN: sb.DSN("walprobe")},
		inproc.Target{Name: "standby2", Kind: probe.KindStandby, DSN: c.Standbys[1].DSN("walprobe")})
	mux := http.NewServeMux()
	mux.Handle(api.ReadyPattern, api.Ready(r.p))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ready := func(name string) (int, api.ReadyBody) {
		resp, err := http.Get(srv.URL + "/v1/targets/" + name + "/ready?max_lag=1s")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var body api.ReadyBody
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("GET ready %s: %v: %s", name, err, b)
		}
		return resp.StatusCode, body
	}
	is := func(name string, code int) func() bool {
		return func() bool { got, _ := ready(name); return got == code }
	}

	fakes.WaitFor(t.Context(), t, 15*time.Second, "standby1 ready", is("standby1", 200))
	if err := c.CutReceiver(ctx, sb); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	fakes.WaitFor(t.Context(), t, 5*time.Second, "standby1 not ready after its receiver is cut", is("standby1", 503))
	_, body := ready("standby1")
	t.Logf("503 %v after the cut: %+v", time.Since(cut).Round(time.Millisecond), body)
	if body.Ready || body.Lag == nil || *body.Lag < 1 {
		t.Errorf("body after cut = %+v, want not ready with lag >= 1s", body)
	}
	// The other standby is not affected.
	if code, body := ready("standby2"); code != 200 {
		t.Errorf("standby2 while standby1 is cut: %d %+v", code, body)
	}

	if err := c.RestoreReceiver(ctx, sb); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	fakes.WaitFor(t.Context(), t, 10*time.Second, "standby1 ready again after restore", is("standby1", 200))
	t.Logf("200 again %v after restore", time.Since(restored).Round(time.Millisecond))
}
