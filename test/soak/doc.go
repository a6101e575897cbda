// Package soak runs the walprobe binary for a long time at 100 ms beats
// against a real primary and two standbys while faults are injected
// (WAL receiver cut and restored, replay paused and resumed, standby
// restarted), sampling the process's goroutines, live heap, RSS, open
// files and server connections, and asserts they stay flat.
//
//	go test ./test/soak -run TestSoak -soak 10m -timeout 20m -v
//
// Without -soak, `go test ./...` runs the same loop as a 20 s smoke.
package soak
