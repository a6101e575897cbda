package otlp

import (
	"errors"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestProtocol(t *testing.T) {
	tests := []struct {
		name    string
		give    Config
		env     map[string]string
		signal  string
		want    string
		wantErr error
	}{
		{name: "default is http/protobuf", signal: SignalMetrics, want: ProtocolHTTP},
		{name: "flag grpc", give: Config{Protocol: "grpc"}, signal: SignalTraces, want: ProtocolGRPC},
		{name: "flag http", give: Config{Protocol: "http"}, signal: SignalTraces, want: ProtocolHTTP},
		{name: "general env", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, signal: SignalMetrics, want: ProtocolGRPC},
		{name: "signal env beats general", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, signal: SignalTraces, want: ProtocolHTTP},
		{name: "signal env for the other signal ignored", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, signal: SignalMetrics, want: ProtocolHTTP},
		{name: "flag beats env", give: Config{Protocol: "http"}, env: map[string]string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}, signal: SignalMetrics, want: ProtocolHTTP},
		{name: "http/json unsupported", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, signal: SignalMetrics, wantErr: ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.give
			c.Getenv = envOf(tt.env)
			got, err := c.protocol(tt.signal)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("protocol = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEnabled(t *testing.T) {
	tests := []struct {
		name   string
		give   Config
		env    map[string]string
		signal string
		want   bool
	}{
		{name: "nothing set", signal: SignalMetrics, want: false},
		{name: "flag", give: Config{Endpoint: "localhost:4317"}, signal: SignalMetrics, want: true},
		{name: "general env", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, signal: SignalTraces, want: true},
		{name: "signal env", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, signal: SignalTraces, want: true},
		{name: "other signal env", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, signal: SignalMetrics, want: false},
		{name: "exporter none", give: Config{Endpoint: "localhost:4317"}, env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}, signal: SignalTraces, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.give
			c.Getenv = envOf(tt.env)
			if got := c.Enabled(tt.signal); got != tt.want {
				t.Errorf("Enabled(%s) = %v, want %v", tt.signal, got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		give Config
		env  map[string]string
		want []string // substrings of the error; none means valid
	}{
		{name: "valid url", give: Config{Endpoint: "https://otel.example.com:4318/prefix", SampleRatio: 1}},
		{name: "valid host:port", give: Config{Endpoint: "otel:4317", Protocol: "grpc", SampleRatio: 0.1}},
		{
			name: "all bad at once",
			give: Config{Endpoint: "ftp://otel:21", Protocol: "thrift", SampleRatio: 2},
			want: []string{"--otlp-endpoint", "--otlp-protocol", "--trace-sample-ratio"},
		},
		{name: "bad env protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "zipkin"}, give: Config{SampleRatio: 1}, want: []string{"OTEL_EXPORTER_OTLP_PROTOCOL"}},
		{name: "no port", give: Config{Endpoint: "otel", SampleRatio: 1}, want: []string{"host:port"}},
		{
			// The error names the host, never the credentials.
			name: "credentials not echoed",
			give: Config{Endpoint: "gopher://user:canary-s3cret@otel:4318", SampleRatio: 1},
			want: []string{"otel:4318"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.give
			c.Getenv = envOf(tt.env)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors mentioning %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "canary-s3cret") {
				t.Errorf("Validate() = %q leaks the password", err)
			}
		})
	}
}
