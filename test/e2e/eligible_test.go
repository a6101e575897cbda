package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/api"
	"github.com/walprobe/walprobe/test/cluster"
)

// Read your writes by LSN (issue 17.3), with real servers: commit a row,
// take pg_current_wal_insert_lsn(), ask /v1/eligible, and read the row on
// every listed target right after the answer: found every time, over 200
// tries, with a standby that replays 1 s late and a fast one. The delayed
// standby is listed only when max_wait covers its delay.
func TestEligibleNeverEarly(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 2})
	fast, slow := c.Standbys[0], c.Standbys[1]
	if err := c.Primary.Exec(ctx, "CREATE TABLE ryw (id int PRIMARY KEY); GRANT SELECT ON ryw TO walprobe"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetApplyDelay(ctx, slow, time.Second); err != nil {
		t.Fatal(err)
	}
	const interval = 200 * time.Millisecond
	r := startProbe(ctx, t, c.Primary.SuperDSN(), "ryw", interval,
		targetDSN{Name: "fast", Kind: probe.KindStandby, DSN: fast.DSN("walprobe")},
		targetDSN{Name: "slow", Kind: probe.KindStandby, DSN: slow.DSN("walprobe")})
	waitFor(t, 30*time.Second, "both standbys healthy", func() bool {
		return r.target(t, "fast").State == probe.StateHealthy && r.target(t, "slow").State == probe.StateHealthy
	})
	mux := http.NewServeMux()
	mux.Handle(api.EligiblePattern, api.Eligible(r.p))
	servers := map[string]*cluster.Server{"fast": fast, "slow": slow}
	conns := map[string]func(id int) (bool, error){}
	for name, s := range servers {
		conn, err := s.Connect(ctx, "walprobe")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		conns[name] = func(id int) (bool, error) {
			var n int
			err := conn.QueryRow(ctx, "SELECT count(*) FROM ryw WHERE id = $1", id).Scan(&n)
			return n == 1, err
		}
	}
	primary, err := c.Primary.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close(ctx)
	listed := map[string]int{}
	var none, tries int
	var waited time.Duration
	for id := 1; id <= 200; id++ {
		query := "max_wait=300ms"
		if id%20 == 0 {
			// Ask for the delayed standby alone, long enough for it.
			query = "max_wait=1500ms&target=slow"
		}
		var lsn string
		if err := primary.QueryRow(ctx, "INSERT INTO ryw VALUES ($1) RETURNING pg_current_wal_insert_lsn()::text", id).Scan(&lsn); err != nil {
			t.Fatal(err)
		}
		// The commit returned before this: take the position after it.
		if err := primary.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", fmt.Sprintf("/v1/eligible?min_lsn=%s&%s", lsn, query), nil))
		var body api.EligibleBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("try %d: %v: %s", id, err, rec.Body)
		}
		tries++
		waited += time.Duration(float64(body.Waited) * float64(time.Second))
		if len(body.Targets) == 0 {
			none++
			if rec.Code != 503 {
				t.Errorf("try %d: empty list with status %d, want 503", id, rec.Code)
			}
			continue
		}
		if rec.Code != 200 {
			t.Errorf("try %d: status %d with %d targets, want 200", id, rec.Code, len(body.Targets))
		}
		for _, e := range body.Targets {
			listed[e.Name]++
			ok, err := conns[e.Name](id)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				t.Errorf("try %d: %s listed at %s (min_lsn %s) but does not show row %d", id, e.Name, e.LSN, lsn, id)
			}
		}
	}
	t.Logf("%d tries: fast listed %d, slow listed %d, none %d; mean wait %v", tries, listed["fast"], listed["slow"], none, (waited / time.Duration(tries)).Round(time.Microsecond))
	if listed["fast"] < 180 {
		t.Errorf("the fast standby was listed %d times of %d, want nearly every time", listed["fast"], tries)
	}
	if listed["slow"] != 10 {
		t.Errorf("the 1 s delayed standby was listed %d times, want the 10 tries that asked for it alone with max_wait 1.5 s", listed["slow"])
	}

	// max_lag lists targets under a lag bound.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/eligible?max_lag=500ms", nil))
	var body api.EligibleBody
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != 200 || len(body.Targets) != 1 || body.Targets[0].Name != "fast" {
		t.Errorf("max_lag=500ms: %d %s, want only fast", rec.Code, rec.Body)
	}
	for _, q := range []string{"", "?min_lsn=banana", "?max_lag=-1s", "?min_lsn=0/1&max_wait=1h", "?min_lsn=0/1&target=nosuch"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/eligible"+q, nil))
		if rec.Code != 400 && rec.Code != 404 {
			t.Errorf("GET /v1/eligible%s = %d, want 400 or 404", q, rec.Code)
		}
	}
}
