package otlp

import (
	"context"
	"errors"
	"log/slog"
	"regexp"

	"go.opentelemetry.io/otel"
)

// LogExportErrors sends the errors the OpenTelemetry SDK reports about
// failed exports (through its global error handler, by default printed to
// stderr) to logger instead, with credentials in URLs removed. Call it
// once, before exporting.
func LogExportErrors(logger *slog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		if errors.Is(err, context.Canceled) {
			// Shutdown cancels the export in flight and exports once
			// more: nothing is lost, nothing to check.
			return
		}
		logger.Warn("otlp export failed; check the collector", "error", RedactURLs(err.Error()))
	}))
}

// userinfo matches the user:password@ part of a URL in an error text (the
// HTTP exporters quote their endpoint URL in errors).
var userinfo = regexp.MustCompile(`(://)[^/@\s"]*@`)

// RedactURLs removes credentials embedded in URLs from s.
func RedactURLs(s string) string { return userinfo.ReplaceAllString(s, "${1}REDACTED@") }
