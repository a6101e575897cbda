// Package fakes holds the only fakes walprobe's tests use besides clocks:
// HTTP receivers that stand in for what walprobe sends to (a webhook
// endpoint, an OTLP/HTTP collector, a peer that accepts and never answers)
// and WaitFor, the one polling wait. PostgreSQL is never faked (see
// test/cluster). It imports testing: it is a test helper, never linked
// into walprobe.
package fakes
