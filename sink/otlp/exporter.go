package otlp

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Resource describes this probe: service.name=walprobe (overridden by
// OTEL_SERVICE_NAME), service.instance.id=ProbeID, service.version, plus
// OTEL_RESOURCE_ATTRIBUTES.
func Resource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{attribute.String("service.name", "walprobe")}
	if cfg.ProbeID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.ProbeID))
	}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	// Later options win: the environment overrides our defaults, as
	// OTEL_SERVICE_NAME must.
	opts := []resource.Option{resource.WithTelemetrySDK(), resource.WithAttributes(attrs...)}
	if cfg.Getenv == nil {
		opts = append(opts, resource.WithFromEnv())
	} else {
		opts = append(opts, resource.WithDetectors(envDetector{cfg.Getenv}))
	}
	r, err := resource.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp resource: %w", err)
	}
	return r, nil
}

// target resolves the protocol and the endpoint flag for one signal, and
// whether to use plaintext (--otlp-insecure or an http:// endpoint).
func (cfg *Config) target(sig string) (proto string, ep *endpoint, insecure bool, err error) {
	if proto, err = cfg.protocol(sig); err != nil {
		return "", nil, false, err
	}
	insecure = cfg.Insecure
	if cfg.Endpoint != "" {
		e, err := parseEndpoint(cfg.Endpoint)
		if err != nil {
			return "", nil, false, fmt.Errorf("--otlp-endpoint: %w", err)
		}
		ep = &e
		insecure = insecure || e.scheme == "http"
	}
	return proto, ep, insecure, nil
}

// MetricReader returns a periodic reader exporting over OTLP, or ok false
// when metrics export is not configured. Shutting down the MeterProvider
// it is added to flushes and closes it.
func MetricReader(ctx context.Context, cfg Config, opts ...sdkmetric.PeriodicReaderOption) (r sdkmetric.Reader, ok bool, err error) {
	if !cfg.Enabled(SignalMetrics) {
		return nil, false, nil
	}
	proto, ep, insecure, err := cfg.target(SignalMetrics)
	if err != nil {
		return nil, false, err
	}
	var exp sdkmetric.Exporter
	switch proto {
	case ProtocolGRPC:
		var o []otlpmetricgrpc.Option
		if ep != nil {
			o = append(o, otlpmetricgrpc.WithEndpoint(ep.hostPort))
		}
		if insecure {
			o = append(o, otlpmetricgrpc.WithInsecure())
		}
		exp, err = otlpmetricgrpc.New(ctx, o...)
	default:
		var o []otlpmetrichttp.Option
		if ep != nil {
			o = append(o, otlpmetrichttp.WithEndpoint(ep.hostPort), otlpmetrichttp.WithURLPath(ep.path+"/v1/metrics"))
		}
		if insecure {
			o = append(o, otlpmetrichttp.WithInsecure())
		}
		exp, err = otlpmetrichttp.New(ctx, o...)
	}
	if err != nil {
		return nil, false, fmt.Errorf("otlp metric exporter (%s): %w", proto, err)
	}
	return sdkmetric.NewPeriodicReader(exp, opts...), true, nil
}

// TracerProvider returns a provider that batches spans to OTLP and samples
// root spans at cfg.SampleRatio (children follow their parent), or ok
// false when trace export is not configured. The caller shuts it down.
func TracerProvider(ctx context.Context, cfg Config, res *resource.Resource, opts ...sdktrace.BatchSpanProcessorOption) (tp *sdktrace.TracerProvider, ok bool, err error) {
	if !cfg.Enabled(SignalTraces) {
		return nil, false, nil
	}
	proto, ep, insecure, err := cfg.target(SignalTraces)
	if err != nil {
		return nil, false, err
	}
	var exp sdktrace.SpanExporter
	switch proto {
	case ProtocolGRPC:
		var o []otlptracegrpc.Option
		if ep != nil {
			o = append(o, otlptracegrpc.WithEndpoint(ep.hostPort))
		}
		if insecure {
			o = append(o, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, o...)
	default:
		var o []otlptracehttp.Option
		if ep != nil {
			o = append(o, otlptracehttp.WithEndpoint(ep.hostPort), otlptracehttp.WithURLPath(ep.path+"/v1/traces"))
		}
		if insecure {
			o = append(o, otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(ctx, o...)
	}
	if err != nil {
		return nil, false, fmt.Errorf("otlp trace exporter (%s): %w", proto, err)
	}
	tp = sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, opts...),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return tp, true, nil
}
