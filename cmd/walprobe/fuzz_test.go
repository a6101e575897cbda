package main

import (
	"bytes"
	"io"
	"testing"

	"github.com/alecthomas/kong"
)

// FuzzConfigYAML feeds arbitrary files to the YAML resolver: loading,
// validating against the real flags and resolving every flag must not
// panic.
// Seeds are also committed under testdata/fuzz/FuzzConfigYAML; plain
// `go test` replays them. The random search is `make fuzz`, never CI.
func FuzzConfigYAML(f *testing.F) {
	for _, s := range []string{
		"intervall: 1s\n",
		"interval: banana\n",
		"primary: \"host=x password=canary123\"\nstandby:\n  r1: \"host=y\"\n",
		"primary: {password: canary123}\n",
		"standby:\n  - {r1: canary123}\n  - r2=host=z\n",
		"probe_id: 7\nstream: false\nlisten: ':0'\n",
		"- a\n- b\n",
		"{{{",
		"",
	} {
		f.Add([]byte(s))
	}
	var c cli
	parser, err := kong.New(&c, kong.Name("walprobe"), kong.Exit(func(int) {}), kong.Writers(io.Discard, io.Discard))
	if err != nil {
		f.Fatal(err)
	}
	var flags []*kong.Flag
	_ = kong.Visit(parser.Model, func(node kong.Visitable, next kong.Next) error {
		if fl, ok := node.(*kong.Flag); ok {
			flags = append(flags, fl)
		}
		return next(nil)
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := loadYAML(bytes.NewReader(data))
		if err != nil {
			return
		}
		y := r.(*yamlConfig)
		_ = y.Validate(parser.Model)
		for _, fl := range flags {
			// Errors may name keys (target names included), so only
			// values are checked, by the table test; here: no panic.
			_, _ = y.Resolve(nil, nil, fl)
		}
	})
}
