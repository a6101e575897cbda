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
// Alert sources here: the Notifier is a probe.Observer that fires when a
// target goes down or is promoted and resolves when it leaves that state,
// fires stream_slot_lost when the logical stream loses the slot it was
// streaming from and resolves it when a new slot streams, and it evaluates lag warning and critical thresholds from the probe's
// snapshot. Other sources (sink/slo) call Notify.
package webhook
