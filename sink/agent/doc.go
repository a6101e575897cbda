// Package agent speaks HAProxy's agent-check protocol, so HAProxy weights
// each replica by its true lag: HAProxy connects to the agent port of a
// server, sends the server's walprobe target name (agent-send "NAME\n"),
// and reads one line back: "up ready 100%", a smaller percentage as the
// lag nears the bound, "drain" above it, "down" when the target is down.
//
// It answers from the probe's in-memory snapshot and never touches
// PostgreSQL. It does not route anything itself and does not replace a
// regular health check of the PostgreSQL port.
// It may import probe (read-only), heartbeat, sink/alert and the shared
// leaf sink, never another sink (test/lint keeps that).
package agent
