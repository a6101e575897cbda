package tls

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
	"github.com/walprobe/walprobe/test/fakes"
	"github.com/walprobe/walprobe/test/launch"
)

// TestBinaryOverVerifyFull runs the walprobe binary against a primary and
// a standby with sslmode=verify-full, an RDS-style CA bundle as
// sslrootcert and a client certificate as the only credential (pg_hba
// cert), and checks that beats are timed on the standby and the logical
// stream, and that every walprobe session on both servers is encrypted and
// authenticated by that certificate.
func TestBinaryOverVerifyFull(t *testing.T) {
	c := cluster.StartT(t, cluster.Options{Standbys: 1, TLS: true})
	dsn := func(s *cluster.Server) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=%s sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s keepalives_idle=30",
			s.Port, cluster.CertUser, c.TLS.Bundle, c.TLS.ClientCert, c.TLS.ClientKey)
	}
	ctx := context.Background()
	w := launch.Start(ctx, t, launch.Options{Args: []string{"run", "--primary", dsn(c.Primary),
		"--standby", "standby1=" + dsn(c.Standbys[0]),
		"--interval", "200ms", "--probe-id", "tlstest"}})
	get := func(path string) string {
		_, body, err := w.Get(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	var state struct {
		Targets []struct {
			Name  string   `json:"name"`
			State string   `json:"state"`
			Delay *float64 `json:"delay_seconds"`
		} `json:"targets"`
	}
	var body string
	fakes.WaitFor(ctx, t, 30*time.Second, "standby1 and stream healthy with a timed beat", func() bool {
		body = get("/v1/state")
		if err := json.Unmarshal([]byte(body), &state); err != nil {
			t.Fatalf("/v1/state: %v: %s", err, body)
		}
		healthy := map[string]bool{}
		for _, tg := range state.Targets {
			healthy[tg.Name] = tg.State == "healthy" && tg.Delay != nil
		}
		return healthy["standby1"] && healthy["stream"]
	})
	for _, srv := range []*cluster.Server{c.Primary, c.Standbys[0]} {
		// The writer and the stream on the primary, the reader on the
		// standby (plus the primary watcher): count sessions by TLS.
		got, err := srv.Scalar(ctx, `SELECT count(*) FILTER (WHERE s.ssl AND s.client_dn = '/CN=`+cluster.CertUser+`')
			|| '/' || count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = $1`, cluster.CertUser)
		if err != nil {
			t.Fatal(err)
		}
		n, total, _ := strings.Cut(got, "/")
		if n != total || n == "0" {
			t.Errorf("%s: %s walprobe sessions over TLS with the client certificate, want all and at least one", srv.Name, got)
		}
		t.Logf("%s: %s walprobe sessions use TLS with CN=%s", srv.Name, got, cluster.CertUser)
	}
	if n, err := c.Primary.Scalar(ctx, `SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.usename = $1 AND s.ssl`, cluster.CertUser); err != nil || n != "1" {
		t.Errorf("logical stream walsenders over TLS: %q, %v; want 1", n, err)
	}
	if _, err := w.Terminate(10 * time.Second); err != nil {
		t.Errorf("walprobe after SIGTERM: %v", err)
	}
	if all := w.Logs(); strings.Contains(all, "level=ERROR") {
		t.Errorf("walprobe logged errors:\n%s", all)
	}
}
