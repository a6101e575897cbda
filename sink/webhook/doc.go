// Package webhook delivers alerts over HTTP with
// github.com/hashicorp/go-retryablehttp.
//
// A [Notifier] accepts alerts from any source without blocking (Notify),
// keeps one firing notification per alert key (name and target) until it
// resolves, queues them in a bounded queue that counts drops, and sends
// them from Run, which retries with jittered backoff on 5xx, 429 and
// timeouts but not on other 4xx. Each body is signed:
// X-Walprobe-Signature: sha256=<hex HMAC-SHA256 of the body>.
//
// Bodies are walprobe's versioned JSON, Alertmanager's alert list, or a
// Slack {"text": ...} message. The URL's path and query often carry a
// token, so they never reach a log or an error: both name the host only.
//
// It is transport only: it decides no alert. The alerts come from
// sink/alert (its Rules and the alert.Alert type) and sink/slo; cmd/walprobe
// hands them to Notify.
//
// It may import probe (read-only), heartbeat, sink/alert and the shared
// leaf sink, never another sink (test/lint keeps that).
package webhook
