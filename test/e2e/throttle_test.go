package e2e

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
)

// TestThrottleChunkedWriter is a backfill that asks /v1/throttle
// (max_lag=1s) before each chunk and inserts a batch on the primary when
// allowed: it writes while the standby keeps up, writes nothing from a
// second after the standby's WAL receiver is cut until it is restored
// (6 s later), and writes again once the standby has caught up.
func TestThrottleChunkedWriter(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	sb := c.Standbys[0]
	w := runProbeBinary(t, "--primary", c.Primary.DSN("walprobe"),
		"--standby", "standby1="+sb.DSN("walprobe"),
		"--interval", "200ms", "--probe-id", "throttle", "--no-stream")
	waitFor(t, 20*time.Second, "standby1 healthy", func() bool {
		s, _ := w.targetState(t, "standby1")
		return s == "healthy"
	})
	conn, err := c.Primary.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE backfill (id bigint, chunk int)"); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + w.Addr + "/v1/throttle?max_lag=1s"
	// run runs the writer loop for d and returns the chunk times, and
	// the Retry-After values of the refusals.
	chunk := 0
	run := func(d time.Duration) (chunks []time.Time, retries []int) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); {
			resp, err := client.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				chunk++
				if _, err := conn.Exec(ctx, "INSERT INTO backfill SELECT g, $1 FROM generate_series(1, 100) g", chunk); err != nil {
					t.Fatal(err)
				}
				chunks = append(chunks, time.Now())
				time.Sleep(20 * time.Millisecond)
			case http.StatusTooManyRequests:
				ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
				if err != nil || ra < 1 {
					t.Fatalf("429 with Retry-After %q, want whole seconds >= 1", resp.Header.Get("Retry-After"))
				}
				retries = append(retries, ra)
				// A real client sleeps Retry-After; the test polls faster
				// to see the moment writing resumes.
				time.Sleep(100 * time.Millisecond)
			default:
				t.Fatalf("throttle answered %d", resp.StatusCode)
			}
		}
		return chunks, retries
	}

	before, _ := run(3 * time.Second)
	if err := c.CutReceiver(ctx, sb); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	during, retries := run(6 * time.Second)
	late := 0
	for _, at := range during {
		if at.Sub(cut) > 1500*time.Millisecond {
			late++
		}
	}
	if err := c.RestoreReceiver(ctx, sb); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	after, _ := run(5 * time.Second)
	t.Logf("chunks: %d in 3 s before the cut, %d in the 6 s cut (%d later than 1.5 s in), %d in 5 s after restore; %d refusals (429) while cut, Retry-After %v…",
		len(before), len(during), late, len(after), len(retries), retries[:min(3, len(retries))])
	if len(before) < 20 {
		t.Errorf("%d chunks in 3 s before the cut, want >= 20", len(before))
	}
	if late != 0 {
		t.Errorf("%d chunks written more than 1.5 s after the standby was cut off, want 0", late)
	}
	if len(retries) == 0 {
		t.Error("no 429 while the standby was cut off")
	}
	if len(after) < 10 {
		t.Errorf("%d chunks in 5 s after restore, want >= 10", len(after))
	} else {
		t.Logf("writing resumed %v after restore", after[0].Sub(restored).Round(time.Millisecond))
	}
}
