package tls

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/test/cluster"
)

// TestKeepAliveOnServerConnections reads the keepalive options back from
// the sockets of real connections — plain, TLS and a replication
// connection like the stream's — opened from DSNs with and without
// libpq's keepalive parameters.
func TestKeepAliveOnServerConnections(t *testing.T) {
	c := cluster.StartT(t, cluster.Options{TLS: true})
	base := func(sslmode string) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=walprobe password=%s sslmode=%s sslrootcert=%s",
			c.Primary.Port, c.Password, sslmode, c.TLS.CA)
	}
	custom := " keepalives=1 keepalives_idle=42 keepalives_interval=7 keepalives_count=4"
	tests := []struct {
		name        string
		dsn         string
		replication bool
		want        [4]int // SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT
	}{
		{"plain defaults", base("disable"), false, [4]int{1, 15, 5, 3}},
		{"plain custom", base("disable") + custom, false, [4]int{1, 42, 7, 4}},
		{"verify-full defaults", base("verify-full"), false, [4]int{1, 15, 5, 3}},
		{"verify-full custom", base("verify-full") + custom, false, [4]int{1, 42, 7, 4}},
		{"replication custom", base("verify-full") + custom, true, [4]int{1, 42, 7, 4}},
		{"off", base("require") + " keepalives=0", false, [4]int{0, -1, -1, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cfg, err := pgconf.Parse("primary", tt.dsn)
			if err != nil {
				t.Fatal(err)
			}
			var pc *pgconn.PgConn
			if tt.replication {
				rc := cfg.Config.Copy()
				rc.RuntimeParams["replication"] = "database"
				if pc, err = pgconn.ConnectConfig(ctx, rc); err != nil {
					t.Fatal(pgconf.Explain("primary", cfg, err))
				}
				defer pc.Close(ctx)
			} else {
				conn, err := pgconf.Connect(ctx, "primary", cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				pc = conn.PgConn()
			}
			nc := pc.Conn()
			if tc, ok := nc.(*tls.Conn); ok {
				nc = tc.NetConn()
			} else if tt.name != "plain defaults" && tt.name != "plain custom" {
				t.Fatalf("connection is %T, want TLS", nc)
			}
			got := sockopts(t, nc)
			if tt.want[0] == 0 {
				got[1], got[2], got[3] = -1, -1, -1 // unused while keepalives are off
			}
			if got != tt.want {
				t.Errorf("SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT = %v, want %v", got, tt.want)
			}
		})
	}
}

func sockopts(t *testing.T, c net.Conn) [4]int {
	t.Helper()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("socket is a %T, want *net.TCPConn", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got [4]int
	var errs []error
	opts := [4][2]int{
		{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
	}
	if err := raw.Control(func(fd uintptr) {
		for i, o := range opts {
			v, err := syscall.GetsockoptInt(int(fd), o[0], o[1])
			if err != nil {
				errs = append(errs, err)
			}
			got[i] = v
		}
	}); err != nil || len(errs) > 0 {
		t.Fatalf("getsockopt: %v %v", err, errs)
	}
	return got
}
