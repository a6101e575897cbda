package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// receiver is a real OTLP receiver: it decodes what exporters send over
// HTTP/protobuf or gRPC and keeps it for assertions.
type receiver struct {
	mu      sync.Mutex // guards the fields below
	metrics []*metricspb.ResourceMetrics
	spans   []*tracepb.ResourceSpans
	paths   []string
	raw     [][]byte // every decoded request body, to search for secrets
}

func (r *receiver) addMetrics(req *colmetricspb.ExportMetricsServiceRequest, path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metrics = append(r.metrics, req.GetResourceMetrics()...)
	r.paths = append(r.paths, path)
}

func (r *receiver) addSpans(req *coltracepb.ExportTraceServiceRequest, path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, req.GetResourceSpans()...)
	r.paths = append(r.paths, path)
}

// startHTTP serves OTLP/HTTP protobuf on /v1/metrics and /v1/traces.
func (r *receiver) startHTTP(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	read := func(w http.ResponseWriter, req *http.Request, m proto.Message) bool {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return false
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err == nil {
			err = proto.Unmarshal(b, m)
		}
		if err == nil {
			r.mu.Lock()
			r.raw = append(r.raw, b)
			r.mu.Unlock()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return false
		}
		return true
	}
	reply := func(w http.ResponseWriter, m proto.Message) {
		b, _ := proto.Marshal(m)
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = io.Copy(w, bytes.NewReader(b))
	}
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, req *http.Request) {
		var m colmetricspb.ExportMetricsServiceRequest
		if read(w, req, &m) {
			r.addMetrics(&m, req.URL.Path)
			reply(w, &colmetricspb.ExportMetricsServiceResponse{})
		}
	})
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		var m coltracepb.ExportTraceServiceRequest
		if read(w, req, &m) {
			r.addSpans(&m, req.URL.Path)
			reply(w, &coltracepb.ExportTraceServiceResponse{})
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type grpcMetrics struct {
	colmetricspb.UnimplementedMetricsServiceServer
	r *receiver
}

func (g grpcMetrics) Export(_ context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	g.r.addMetrics(req, "grpc")
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

type grpcTraces struct {
	coltracepb.UnimplementedTraceServiceServer
	r *receiver
}

func (g grpcTraces) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.r.addSpans(req, "grpc")
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// startGRPC serves the OTLP metrics and trace services on a free
// 127.0.0.1 port and returns host:port.
func (r *receiver) startGRPC(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer()
	colmetricspb.RegisterMetricsServiceServer(srv, grpcMetrics{r: r})
	coltracepb.RegisterTraceServiceServer(srv, grpcTraces{r: r})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return ln.Addr().String()
}

// metricByName returns the last received metric called name and its
// resource.
func (r *receiver) metricByName(name string) (*metricspb.Metric, *resourcepb.Resource, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.metrics) - 1; i >= 0; i-- {
		rm := r.metrics[i]
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if m.GetName() == name {
					return m, rm.GetResource(), true
				}
			}
		}
	}
	return nil, nil, false
}

// allSpans flattens what was received, with each span's resource.
func (r *receiver) allSpans() ([]*tracepb.Span, []*resourcepb.Resource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var spans []*tracepb.Span
	var res []*resourcepb.Resource
	for _, rs := range r.spans {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				spans = append(spans, s)
				res = append(res, rs.GetResource())
			}
		}
	}
	return spans, res
}

func attrMap(kvs []*commonpb.KeyValue) map[string]*commonpb.AnyValue {
	m := map[string]*commonpb.AnyValue{}
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}
