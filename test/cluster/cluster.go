package cluster

import (
	"context"
	"time"

	"github.com/walprobe/walprobe/cmd/localcluster"
)

// The cluster API is cmd/localcluster's; these names keep the tests'
// spelling (cluster.Options, cluster.Server, …) without a second copy.
type (
	Options            = localcluster.Options
	Cluster            = localcluster.Cluster
	Server             = localcluster.Server
	PgBouncer          = localcluster.PgBouncer
	TLS                = localcluster.TLS
	MissingBinaryError = localcluster.MissingBinaryError
)

const (
	// SubscriptionName is the subscription Options.Subscriber creates.
	SubscriptionName = localcluster.SubscriptionName
	// CertUser is the role Options.TLS creates that logs in only with a
	// client certificate.
	CertUser = localcluster.CertUser
)

var (
	// ErrNull is returned by Server.Scalar when the query returned SQL NULL.
	ErrNull = localcluster.ErrNull
	// ErrNotStandby is returned by the standby fault helpers when given a
	// server that was not made with pg_basebackup.
	ErrNotStandby = localcluster.ErrNotStandby
	// DefaultTLSServerNames are the names the server certificate is valid
	// for unless Options.TLSServerNames says otherwise.
	DefaultTLSServerNames = localcluster.DefaultTLSServerNames
)

// Start is [localcluster.Start]: it brings up the cluster o describes and
// returns once every standby streams, the subscription has synced and
// pgbouncer answers. On error it tears down whatever it started.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	return localcluster.Start(ctx, o)
}

// TB is the part of testing.TB that StartT uses; *testing.T satisfies it.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Failed() bool
}

// StartT starts a cluster for a test: it fails the test if Start fails, logs
// progress with t.Logf unless o.Logf is set, and registers Close with
// t.Cleanup, printing the tail of every log first if the test failed. Until
// then, SIGINT or SIGTERM closes the cluster before the process dies.
func StartT(t TB, o Options) *Cluster {
	t.Helper()
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("%v", err)
	}
	unwatch := watchInterrupt(c)
	t.Cleanup(func() {
		defer unwatch()
		if t.Failed() {
			t.Logf("cluster logs:\n%s", c.LogTails(40))
		}
		if err := c.Close(); err != nil {
			t.Logf("%v", err)
		}
	})
	return c
}
