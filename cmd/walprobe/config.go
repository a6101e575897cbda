package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
	"gopkg.in/yaml.v3"
)

// yamlConfig resolves flags from a YAML file whose keys are the flag names
// (probe_id or probe-id). Flags given on the command line and WALPROBE_*
// environment variables win over the file. Unknown keys are errors that
// suggest the nearest known key: a misspelt key silently ignored is a
// probe watching the wrong thing.
type yamlConfig struct {
	path   string
	values map[string]any
}

func loadYAML(r io.Reader) (kong.Resolver, error) { return yamlLoader(nil)(r) }

// yamlLoader is loadYAML that first hands the file's text to red, so that
// run can redact a password the file carries from any error about it.
func yamlLoader(red *redactor) kong.ConfigurationLoader {
	return func(r io.Reader) (kong.Resolver, error) {
		name := "config"
		if f, ok := r.(*os.File); ok {
			name = f.Name()
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		red.addYAML(data)
		return parseYAML(name, data)
	}
}

func parseYAML(name string, data []byte) (kong.Resolver, error) {
	var raw map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: not valid YAML: %w", name, err)
	}
	c := &yamlConfig{path: name, values: map[string]any{}}
	for k, v := range raw {
		c.values[normKey(k)] = v
	}
	return c, nil
}

func normKey(k string) string { return strings.ReplaceAll(strings.ToLower(k), "_", "-") }

// Validate rejects keys that are not flags of the application.
func (c *yamlConfig) Validate(app *kong.Application) error {
	known := map[string]bool{}
	_ = kong.Visit(app, func(node kong.Visitable, next kong.Next) error {
		if f, ok := node.(*kong.Flag); ok {
			known[f.Name] = true
		}
		return next(nil)
	})
	var bad []string
	for k := range c.values {
		if !known[k] {
			bad = append(bad, k)
		}
	}
	sort.Strings(bad)
	var msgs []string
	for _, k := range bad {
		msg := fmt.Sprintf("%s: unknown key %q", c.path, strings.ReplaceAll(k, "-", "_"))
		if s := nearest(k, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", strings.ReplaceAll(s, "-", "_"))
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) > 0 {
		return &configError{errors.New(strings.Join(msgs, "; "))}
	}
	return nil
}

// Resolve returns the file's value for flag unless the environment sets it.
func (c *yamlConfig) Resolve(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
	for _, env := range flag.Envs {
		if _, ok := os.LookupEnv(env); ok {
			return nil, nil
		}
	}
	v, ok := c.values[flag.Name]
	if !ok {
		return nil, nil
	}
	// Errors name the key and the shape wanted, never the value: a value
	// under primary or standby is a DSN and may carry a password, and kong
	// echoes values it cannot convert.
	key := strings.ReplaceAll(flag.Name, "-", "_")
	if _, ok := v.(map[string]any); ok && !flag.IsSlice() {
		return nil, configErrorf("%s: key %q: want a single value, not a map", c.path, key)
	}
	if _, ok := v.([]any); ok && !flag.IsSlice() {
		return nil, configErrorf("%s: key %q: want a single value, not a list", c.path, key)
	}
	switch t := v.(type) {
	case map[string]any:
		// standby: {name: dsn} reads naturally in YAML.
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([]any, 0, len(keys))
		for _, k := range keys {
			s, ok := scalar(t[k])
			if !ok {
				return nil, configErrorf("%s: key %q, entry %q: want NAME: DSN with the DSN a string", c.path, key, k)
			}
			out = append(out, k+"="+s)
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(t))
		for i, e := range t {
			s, ok := scalar(e)
			if !ok {
				return nil, configErrorf("%s: key %q, item %d: want a string such as NAME=DSN", c.path, key, i+1)
			}
			out = append(out, s)
		}
		return out, nil
	case nil:
		return nil, nil
	default:
		return fmt.Sprint(t), nil
	}
}

// scalar formats a YAML scalar; maps and lists are not scalars.
func scalar(v any) (string, bool) {
	switch v.(type) {
	case map[string]any, []any, nil:
		return "", false
	}
	return fmt.Sprint(v), true
}

// nearest returns the known key closest to k, if it is close enough to be
// a typo.
func nearest(k string, known map[string]bool) string {
	best, bestD := "", len(k)/2+2
	for c := range known {
		if d := levenshtein(k, c); d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// configError is a bad flag, key or value: exit status 2. It wraps the
// error that says what is wrong, so errors.Is and errors.As still reach
// the lower layer's sentinels and types (heartbeat.ErrNotSetUp,
// *pgconf.Error) through it.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }

func (e *configError) Unwrap() error { return e.err }

// configErrorf is a configError from fmt.Errorf: wrap with %w.
func configErrorf(format string, args ...any) error {
	return &configError{fmt.Errorf(format, args...)}
}
