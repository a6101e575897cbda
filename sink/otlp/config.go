package otlp

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Protocols a Config accepts.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Signals, as they appear in OTEL_EXPORTER_OTLP_<SIGNAL>_* variables.
const (
	SignalMetrics = "METRICS"
	SignalTraces  = "TRACES"
)

// Config says where and how to export. Zero fields fall back to the
// standard OTEL_* environment.
type Config struct {
	// Endpoint is a base URL (http://collector:4318) or host:port. For
	// HTTP the signal path (/v1/metrics, /v1/traces) is appended, as for
	// OTEL_EXPORTER_OTLP_ENDPOINT.
	Endpoint string
	// Protocol is "grpc", "http" or "http/protobuf"; empty reads
	// OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL, then defaults to http/protobuf
	// as the specification says.
	Protocol string
	// Insecure disables TLS for a host:port endpoint.
	Insecure bool
	// SampleRatio is the parent-based trace sampling ratio in [0, 1].
	SampleRatio float64

	ProbeID string // service.instance.id
	Version string // service.version

	// Getenv reads the environment; nil means os.Getenv. Tests set it.
	Getenv func(string) string
}

func (c *Config) getenv(k string) string {
	if c.Getenv == nil {
		return os.Getenv(k)
	}
	return c.Getenv(k)
}

// Validate reports every bad field at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Protocol != "" {
		if _, err := normalizeProtocol(c.Protocol); err != nil {
			errs = append(errs, fmt.Errorf("--otlp-protocol %q: %w", c.Protocol, err))
		}
	}
	for _, s := range []string{SignalMetrics, SignalTraces} {
		k := "OTEL_EXPORTER_OTLP_" + s + "_PROTOCOL"
		if v := c.getenv(k); v != "" && c.Protocol == "" {
			if _, err := normalizeProtocol(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", k, v, err))
			}
		}
	}
	if v := c.getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); v != "" && c.Protocol == "" {
		if _, err := normalizeProtocol(v); err != nil {
			errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: %w", v, err))
		}
	}
	if c.Endpoint != "" {
		if _, err := parseEndpoint(c.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("--otlp-endpoint: %w", err))
		}
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("--trace-sample-ratio %g: must be between 0 and 1", c.SampleRatio))
	}
	return errors.Join(errs...)
}

// Enabled reports whether signal ("METRICS" or "TRACES") is exported: an
// endpoint is set by Config or environment, and OTEL_<SIGNAL>_EXPORTER is
// not "none".
func (c *Config) Enabled(signal string) bool {
	if strings.EqualFold(strings.TrimSpace(c.getenv("OTEL_"+signal+"_EXPORTER")), "none") {
		return false
	}
	return c.Endpoint != "" ||
		c.getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		c.getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// protocol resolves the protocol for signal: Config, then the signal's
// variable, then the general one, then http/protobuf.
func (c *Config) protocol(signal string) (string, error) {
	for _, v := range []string{c.Protocol, c.getenv("OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL"), c.getenv("OTEL_EXPORTER_OTLP_PROTOCOL")} {
		if v != "" {
			return normalizeProtocol(v)
		}
	}
	return ProtocolHTTP, nil
}

// ErrProtocol is returned for a protocol other than grpc or http/protobuf
// (http/json is not supported by the Go exporters).
var ErrProtocol = errors.New("unsupported OTLP protocol: use grpc or http/protobuf")

func normalizeProtocol(p string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(p)) {
	case "grpc":
		return ProtocolGRPC, nil
	case "http", "http/protobuf":
		return ProtocolHTTP, nil
	}
	return "", ErrProtocol
}

// endpoint is a parsed Config.Endpoint.
type endpoint struct {
	hostPort string
	path     string // base path of a URL, "" for host:port
	scheme   string // "" for host:port
}

// parseEndpoint accepts a URL with http or https, or host:port. Errors
// name only the host: a URL could carry credentials.
func parseEndpoint(s string) (endpoint, error) {
	if !strings.Contains(s, "://") {
		if strings.ContainsAny(s, "/@?") || !strings.Contains(s, ":") {
			return endpoint{}, errors.New("want host:port or http(s)://host:port[/path]")
		}
		return endpoint{hostPort: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, errors.New("not a URL: want http(s)://host:port[/path]")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return endpoint{}, fmt.Errorf("scheme %q of %s: want http or https", u.Scheme, u.Host)
	}
	if u.Host == "" {
		return endpoint{}, errors.New("no host: want http(s)://host:port[/path]")
	}
	return endpoint{hostPort: u.Host, path: strings.TrimSuffix(u.Path, "/"), scheme: u.Scheme}, nil
}
