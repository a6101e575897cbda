package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// toxi is an in-process toxiproxy server: no API listener, proxies and
// toxics are driven through its Go types.
type toxi struct {
	srv     *toxiproxy.ApiServer
	proxies []*toxiproxy.Proxy
}

func newToxi(t *testing.T) *toxi {
	t.Helper()
	// Toxics log through zerolog's global logger at trace level.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	x := &toxi{srv: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())}
	t.Cleanup(func() {
		for _, p := range x.proxies {
			p.Stop()
		}
	})
	return x
}

// proxy is one toxiproxy listener in front of an upstream port.
type proxy struct {
	p    *toxiproxy.Proxy
	Port int
}

// proxy starts a proxy on a free 127.0.0.1 port in front of
// 127.0.0.1:upstream.
func (x *toxi) proxy(t *testing.T, name string, upstream int) *proxy {
	t.Helper()
	p := toxiproxy.NewProxy(x.srv, name, "127.0.0.1:0", net.JoinHostPort("127.0.0.1", strconv.Itoa(upstream)))
	if err := p.Start(); err != nil {
		t.Fatalf("start toxiproxy %s: %v", name, err)
	}
	if err := x.srv.Collection.Add(p, false); err != nil {
		t.Fatalf("register toxiproxy %s: %v", name, err)
	}
	x.proxies = append(x.proxies, p)
	_, port, _ := net.SplitHostPort(p.Listen)
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("toxiproxy %s listens on %q", name, p.Listen)
	}
	return &proxy{p: p, Port: n}
}

// add adds a toxic on both directions' chosen stream ("downstream" is
// server → probe). attrs are the toxic's attributes.
func (p *proxy) add(t *testing.T, typ, stream string, attrs map[string]any) string {
	t.Helper()
	name := typ + "_" + stream
	b, _ := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		t.Fatalf("add toxic %s to %s: %v", name, p.p.Name, err)
	}
	return name
}

// remove removes a toxic added by add.
func (p *proxy) remove(t *testing.T, name string) {
	t.Helper()
	if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Fatalf("remove toxic %s from %s: %v", name, p.p.Name, err)
	}
}

func (p *proxy) String() string { return fmt.Sprintf("%s(:%d)", p.p.Name, p.Port) }
