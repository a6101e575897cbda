package main

import (
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

// redactor removes from what walprobe prints on exit every password found
// in what it was given: the arguments, WALPROBE_* variables and the
// --config file's keys, values and lines. Components already keep
// passwords out of their errors, but an operator's slip puts a DSN where
// no component expects one (a stray argument, --interval, a misspelt YAML
// key) and the layer that rejects it, kong's parser included, echoes it.
// So run redacts at the printing edge, whatever produced the message; the
// errors themselves stay wrapped for errors.Is/As.
//
// It recognises passwords only as pgconf.Redact does (libpq password=,
// URI userinfo and ?password=, raw and percent-decoded); it does not
// know which values are secrets otherwise.
type redactor struct {
	sources []string // strings that may carry a password
}

// newRedactor takes the arguments and the WALPROBE_* environment.
func newRedactor(args []string) *redactor {
	r := &redactor{}
	r.add(args...)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "WALPROBE_") {
			r.add(kv)
		}
	}
	return r
}

// add records strings that may carry a password: whole, and from every =
// and every space on, so that --primary=postgres://…, NAME=DSN and a YAML
// line parse as the DSN they end with.
func (r *redactor) add(ss ...string) {
	if r == nil {
		return
	}
	for _, s := range ss {
		if !strings.Contains(strings.ToLower(s), "password") && !strings.Contains(s, "@") {
			continue // no password in any form pgconf.Redact knows
		}
		r.sources = append(r.sources, s)
		for i, c := range s {
			if c == '=' || c == ' ' {
				r.sources = append(r.sources, strings.Trim(s[i+1:], ` "'`))
			}
		}
	}
}

// addYAML records the keys, values and lines of a configuration file,
// including the forms an unknown-key error prints (lower case, _ for -),
// and the lines of one that does not parse.
func (r *redactor) addYAML(data []byte) {
	if r == nil {
		return
	}
	r.add(strings.Split(string(data), "\n")...)
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			k := normKey(n.Value)
			r.add(n.Value, k, strings.ReplaceAll(k, "-", "_"))
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
}

// redact returns s without any password the sources carry, also in the
// Go-quoted form kong and %q print.
func (r *redactor) redact(s string) string {
	if r == nil {
		return s
	}
	for _, src := range r.sources {
		s = pgconf.Redact(src, s)
		if q := strconv.Quote(src); q[1:len(q)-1] != src {
			s = pgconf.Redact(q[1:len(q)-1], s)
		}
	}
	return s
}
