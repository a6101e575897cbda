package pgconf

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
)

// sockopts reads the keepalive options of a TCP connection from the kernel.
func sockopts(t *testing.T, c net.Conn) (on, idle, intvl, cnt int) {
	t.Helper()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("dialed a %T, want *net.TCPConn", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	get := func(fd uintptr, level, opt int) int {
		v, err := syscall.GetsockoptInt(int(fd), level, opt)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	err = raw.Control(func(fd uintptr) {
		on = get(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		idle = get(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		intvl = get(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
		cnt = get(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
	})
	if err != nil || len(errs) > 0 {
		t.Fatalf("getsockopt: %v %v", err, errs)
	}
	return on, idle, intvl, cnt
}

// systemKeepAlive is what the kernel gives a fresh socket.
func systemKeepAlive(t *testing.T, addr string) (idle, intvl, cnt int) {
	t.Helper()
	c, err := (&net.Dialer{KeepAlive: -1}).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, idle, intvl, cnt = sockopts(t, c)
	return idle, intvl, cnt
}

// TestKeepAliveReachesSocket dials through the DialFunc Parse configures
// and reads the options back from the socket with getsockopt.
func TestKeepAliveReachesSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()
	sysIdle, sysIntvl, sysCnt := systemKeepAlive(t, ln.Addr().String())

	tests := []struct {
		name                string
		give                string
		on, idle, intvl, ct int
	}{
		{"defaults", "", 1, 15, 5, 3},
		{"all set", "keepalives=1 keepalives_idle=60 keepalives_interval=10 keepalives_count=6", 1, 60, 10, 6},
		{"only idle", "keepalives_idle=120", 1, 120, 5, 3},
		{"zero means system default", "keepalives_idle=0 keepalives_interval=0 keepalives_count=0", 1, sysIdle, sysIntvl, sysCnt},
		{"off", "keepalives=0 keepalives_idle=60", 0, sysIdle, sysIntvl, sysCnt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("t", "host=127.0.0.1 user=u dbname=d "+tt.give)
			if err != nil {
				t.Fatal(err)
			}
			for k := range cfg.RuntimeParams {
				if strings.HasPrefix(k, "keepalives") {
					t.Errorf("%s left in RuntimeParams: the server would refuse it", k)
				}
			}
			c, err := cfg.DialFunc(context.Background(), "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			on, idle, intvl, cnt := sockopts(t, c)
			if on != tt.on {
				t.Errorf("SO_KEEPALIVE = %d, want %d", on, tt.on)
			}
			if tt.on == 0 {
				return // the kernel keeps its own values; none are used
			}
			if idle != tt.idle || intvl != tt.intvl || cnt != tt.ct {
				t.Errorf("TCP_KEEPIDLE/INTVL/CNT = %d/%d/%d, want %d/%d/%d", idle, intvl, cnt, tt.idle, tt.intvl, tt.ct)
			}
		})
	}
}

func TestKeepAliveBadValues(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{"keepalives=yes", `keepalives="yes": want`},
		{"keepalives=2", `keepalives="2": want 1 (on, the default) or 0 (off)`},
		{"keepalives_idle=-5", `keepalives_idle="-5": want a whole number ≥ 0`},
		{"keepalives_interval=1.5", `keepalives_interval="1.5": want a whole number ≥ 0`},
		{"keepalives_count=x", `keepalives_count="x": want a whole number ≥ 0`},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			_, err := Parse("--standby r1", "host=h password=canary123 "+tt.give)
			if err == nil {
				t.Fatalf("Parse accepted %s", tt.give)
			}
			got := err.Error()
			if !strings.HasPrefix(got, "--standby r1: ") || !strings.Contains(got, tt.want) || strings.Contains(got, "canary123") {
				t.Errorf("Parse error = %q, want the flag, %q and no password", got, tt.want)
			}
		})
	}
}
