package tls

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat/pgconf"
	"github.com/walprobe/walprobe/test/cluster"
)

// conn describes one connection attempt of the matrix.
type conn struct {
	host     string // "localhost" or "127.0.0.1"
	user     string // "walprobe" (password) or cluster.CertUser
	sslmode  string // "" leaves libpq's default, prefer
	rootcert string
	cert     string
	key      string
	extra    string // more key=value pairs
}

func (c conn) dsn(port int, password string) string {
	s := fmt.Sprintf("host=%s port=%d dbname=postgres user=%s connect_timeout=5", c.host, port, c.user)
	if c.user != cluster.CertUser {
		s += " password=" + password
	}
	for k, v := range map[string]string{"sslmode": c.sslmode, "sslrootcert": c.rootcert, "sslcert": c.cert, "sslkey": c.key} {
		if v != "" {
			s += " " + k + "=" + v
		}
	}
	if c.extra != "" {
		s += " " + c.extra
	}
	return s
}

// TestSSLModes connects with every sslmode to a TLS server whose
// certificate is valid for "localhost" only, with the right CA, a wrong
// one, an RDS-style bundle, the right and the wrong host name, with and
// without client certificates, and with sslmode=require to a server
// without TLS. A connection that must work is checked in pg_stat_ssl; one
// that must fail must say, in one line without the password, what to fix.
func TestSSLModes(t *testing.T) {
	tc := cluster.StartT(t, cluster.Options{TLS: true, TLSServerNames: []string{"localhost"}})
	plain := cluster.StartT(t, cluster.Options{})
	ca, bundle, other := tc.TLS.CA, tc.TLS.Bundle, tc.TLS.OtherCA
	const right, wrong = "localhost", "127.0.0.1" // the certificate names localhost only
	certUser := func(host, sslmode, cert, key string) conn {
		return conn{host: host, user: cluster.CertUser, sslmode: sslmode, rootcert: ca, cert: cert, key: key}
	}
	pw := func(host, sslmode, rootcert string) conn {
		return conn{host: host, user: "walprobe", sslmode: sslmode, rootcert: rootcert}
	}
	unknownCA := "x509: server certificate signed by unknown authority"
	checkRoot := "check sslrootcert"
	tests := []struct {
		name    string
		plain   bool // against the server without TLS
		give    conn
		wantSSL bool     // when the connection must work
		want    []string // when it must fail: what the one line says
	}{
		{name: "disable", give: pw(wrong, "disable", ""), wantSSL: false},
		{name: "disable ignores a wrong CA", give: pw(wrong, "disable", other), wantSSL: false},
		{name: "prefer (default) uses TLS", give: pw(wrong, "", ""), wantSSL: true},
		{name: "require without sslrootcert checks nothing", give: pw(wrong, "require", ""), wantSSL: true},
		{name: "require with the right CA", give: pw(wrong, "require", ca), wantSSL: true},
		{name: "require with a wrong CA (libpq: acts as verify-ca)", give: pw(right, "require", other), want: []string{unknownCA, checkRoot}},
		{name: "verify-ca right CA wrong host", give: pw(wrong, "verify-ca", ca), wantSSL: true},
		{name: "verify-ca right CA right host", give: pw(right, "verify-ca", ca), wantSSL: true},
		{name: "verify-ca bundle", give: pw(wrong, "verify-ca", bundle), wantSSL: true},
		{name: "verify-ca wrong CA right host", give: pw(right, "verify-ca", other), want: []string{unknownCA, checkRoot}},
		{name: "verify-ca wrong CA wrong host", give: pw(wrong, "verify-ca", other), want: []string{unknownCA, checkRoot}},
		{name: "verify-full right CA right host", give: pw(right, "verify-full", ca), wantSSL: true},
		{name: "verify-full bundle right host", give: pw(right, "verify-full", bundle), wantSSL: true},
		{name: "verify-full right CA wrong host", give: pw(wrong, "verify-full", ca),
			want: []string{"127.0.0.1", "host in the DSN must be a name the server certificate lists", "verify-ca"}},
		{name: "verify-full bundle wrong host", give: pw(wrong, "verify-full", bundle),
			want: []string{"host in the DSN must be a name the server certificate lists"}},
		{name: "verify-full wrong CA right host", give: pw(right, "verify-full", other), want: []string{unknownCA, checkRoot}},
		{name: "verify-full wrong CA wrong host", give: pw(wrong, "verify-full", other), want: []string{"TLS", "x509"}},
		{name: "verify-full without sslrootcert", give: pw(right, "verify-full", ""), want: []string{unknownCA, checkRoot}},
		{name: "verify-full missing sslrootcert file", give: pw(right, "verify-full", "/nonexistent/root.crt"),
			want: []string{"invalid DSN", "/nonexistent/root.crt", "check sslrootcert"}},

		{name: "client cert verify-full", give: certUser(right, "verify-full", tc.TLS.ClientCert, tc.TLS.ClientKey), wantSSL: true},
		{name: "client cert require", give: certUser(wrong, "require", tc.TLS.ClientCert, tc.TLS.ClientKey), wantSSL: true},
		{name: "cert user without a client cert", give: certUser(right, "verify-full", "", ""),
			want: []string{"requires a valid client certificate", "set sslcert and sslkey", "CN=" + cluster.CertUser}},
		// The server names the CAs it accepts in its certificate request;
		// Go's TLS client then holds back a certificate none of them
		// signed, so the server sees none.
		{name: "client cert from an unknown CA", give: certUser(right, "verify-full", tc.TLS.StrangerCert, tc.TLS.StrangerKey),
			want: []string{"requires a valid client certificate", "signed by a CA in the server's ssl_ca_file"}},
		{name: "client cert for another CN", give: certUser(right, "verify-full", tc.TLS.WrongCNCert, tc.TLS.WrongCNKey),
			want: []string{"certificate authentication failed", "CN must be the user name"}},
		{name: "cert user without TLS", give: certUser(right, "disable", "", ""),
			want: []string{"rejected a connection without TLS", "set sslmode=require"}},
		{name: "sslcert without sslkey", give: certUser(right, "verify-full", tc.TLS.ClientCert, ""),
			want: []string{"invalid DSN", "check sslcert and sslkey"}},
		{name: "unreadable sslkey", give: certUser(right, "verify-full", tc.TLS.ClientCert, "/nonexistent/client.key"),
			want: []string{"invalid DSN", "/nonexistent/client.key", "check sslcert and sslkey"}},

		{name: "no-TLS server require", plain: true, give: pw(wrong, "require", ""),
			want: []string{"the server does not accept TLS", "sslmode=disable or prefer"}},
		{name: "no-TLS server verify-full", plain: true, give: pw(right, "verify-full", ca),
			want: []string{"the server does not accept TLS"}},
		{name: "no-TLS server prefer falls back", plain: true, give: pw(wrong, "prefer", ""), wantSSL: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tc.Primary
			if tt.plain {
				srv = plain.Primary
			}
			password := tc.Password
			if tt.plain {
				password = plain.Password
			}
			dsn := tt.give.dsn(srv.Port, password)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			const name = "--standby replica1"
			cfg, err := pgconf.Parse(name, dsn)
			if err == nil {
				var c interface{ Close(context.Context) error }
				conn, cerr := pgconf.Connect(ctx, name, cfg)
				if cerr == nil {
					c = conn
					defer c.Close(ctx)
					if tt.want != nil {
						t.Fatalf("connected, want a failure saying %q", tt.want)
					}
					var ssl bool
					var user string
					if err := conn.QueryRow(ctx, "SELECT ssl, current_user FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE pid = pg_backend_pid()").Scan(&ssl, &user); err != nil {
						t.Fatal(err)
					}
					if ssl != tt.wantSSL {
						t.Errorf("pg_stat_ssl.ssl = %t, want %t", ssl, tt.wantSSL)
					}
					if user != tt.give.user {
						t.Errorf("current_user = %q, want %q", user, tt.give.user)
					}
					return
				}
				err = cerr
			}
			if tt.want == nil {
				t.Fatalf("want a connection, got: %v", err)
			}
			got := err.Error()
			t.Logf("%s", got)
			if strings.Contains(got, password) || strings.Contains(got, "\n") {
				t.Errorf("want one line without the password, got %q", got)
			}
			if !strings.HasPrefix(got, name) {
				t.Errorf("error does not start with the target name %q: %q", name, got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("error does not say %q: %q", w, got)
				}
			}
		})
	}
}
