package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
)

// TestWebhookLagAlert runs the binary with a webhook receiver: cutting the
// standby off fires a signed lag_warning alert; restoring it resolves it.
func TestWebhookLagAlert(t *testing.T) {
	ctx := context.Background()
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	const secret = "whsecret"
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		if r.Header.Get("X-Walprobe-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("bad signature on %s", body)
		}
		var p map[string]any
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("payload %s: %v", body, err)
		}
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}))
	defer srv.Close()
	cmd := exec.Command(buildBinary(t), "run", "--primary", c.Primary.DSN("walprobe"),
		"--standby", "standby1="+c.Standbys[0].DSN("walprobe"), "--no-stream",
		"--interval", "200ms", "--listen", "127.0.0.1:0", "--probe-id", "alerts",
		"--webhook-url", srv.URL+"/hook/token123", "--alert-lag-warning", "2s", "--alert-lag-critical", "0")
	cmd.Env = append(cmd.Environ(), "WALPROBE_WEBHOOK_SECRET="+secret)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	time.Sleep(2 * time.Second)
	if err := c.CutReceiver(ctx, c.Standbys[0]); err != nil {
		t.Fatal(err)
	}
	find := func(status string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range got {
			if p["alert"] == "lag_warning" && p["target"] == "standby1" && p["status"] == status {
				return true
			}
		}
		return false
	}
	waitFor(t, 25*time.Second, "a firing lag_warning webhook", func() bool { return find("firing") })
	if err := c.RestoreReceiver(ctx, c.Standbys[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 25*time.Second, "a resolved lag_warning webhook", func() bool { return find("resolved") })

	// A primary outage: one primary_unreachable alert, and no lag alert
	// for the caught-up standby (its lag is unknown, not growing).
	waitFor(t, 10*time.Second, "standby1 caught up", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	before := len(got)
	mu.Unlock()
	if err := c.Primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	count := func(name, status string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, p := range got[before:] {
			if p["alert"] == name && p["status"] == status {
				n++
			}
		}
		return n
	}
	waitFor(t, 10*time.Second, "a firing primary_unreachable webhook", func() bool { return count("primary_unreachable", "firing") == 1 })
	time.Sleep(4 * time.Second) // past --alert-lag-warning 2s
	if n := count("lag_warning", "firing"); n != 0 {
		t.Errorf("%d lag_warning alerts fired during a primary outage, want 0 (the caught-up standby's lag is unknown)", n)
	}
	if err := c.Primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 25*time.Second, "a resolved primary_unreachable webhook", func() bool { return count("primary_unreachable", "resolved") == 1 })
	if n := count("primary_unreachable", "firing"); n != 1 {
		t.Errorf("primary_unreachable fired %d times, want once", n)
	}
}
