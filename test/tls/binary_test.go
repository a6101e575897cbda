package tls

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/cluster"
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
	cmd := exec.Command(buildBinary(t), "run", "--primary", dsn(c.Primary),
		"--standby", "standby1="+dsn(c.Standbys[0]),
		"--interval", "200ms", "--listen", "127.0.0.1:0", "--probe-id", "tlstest")
	addr, logs := start(t, cmd)
	get := func(path string) string {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var state struct {
		Targets []struct {
			Name  string   `json:"name"`
			State string   `json:"state"`
			Delay *float64 `json:"delay_seconds"`
		} `json:"targets"`
	}
	var body string
	waitFor(t, 30*time.Second, "standby1 and stream healthy with a timed beat", func() bool {
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
	ctx := context.Background()
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
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := wait(cmd, 10*time.Second); err != nil {
		t.Errorf("walprobe after SIGTERM: %v", err)
	}
	if all := <-logs; strings.Contains(all, "level=ERROR") {
		t.Errorf("walprobe logged errors:\n%s", all)
	}
}

var binPath string

// buildBinary builds cmd/walprobe once per test process.
func buildBinary(t *testing.T) string {
	t.Helper()
	if binPath != "" {
		return binPath
	}
	dir, err := os.MkdirTemp("", "walprobe-bin-")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "walprobe")
	out, err := exec.Command("go", "build", "-o", p, "github.com/walprobe/walprobe/cmd/walprobe").CombinedOutput()
	if err != nil {
		t.Fatalf("build walprobe: %v\n%s", err, out)
	}
	binPath = p
	return p
}

// start starts cmd and returns the address it serves HTTP on and a channel
// that yields its whole stderr once it exits. The process is killed when
// the test ends if it still runs.
func start(t *testing.T, cmd *exec.Cmd) (addr string, logs <-chan string) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lc := make(chan string, 1)
	addrc := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`msg=serving .*addr=(\S+)`)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		lc <- all.String()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	select {
	case addr = <-addrc:
		return addr, lc
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("walprobe did not start serving:\n%s", <-lc)
	}
	return "", nil
}

// wait waits up to d for cmd to exit.
func wait(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("did not exit within %s", d)
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}
