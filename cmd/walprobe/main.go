// Command walprobe measures true end-to-end replication visibility delay
// for PostgreSQL. Run `walprobe --help`.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type cli struct {
	Config     kong.ConfigFlag `help:"YAML file with the same keys as the flags (flags and WALPROBE_* env win)." type:"existingfile" placeholder:"FILE"`
	Run        runCmd          `cmd:"" help:"Watch a primary and its read targets; serve /metrics, /v1/state, /healthz."`
	Check      checkCmd        `cmd:"" help:"One-shot Nagios/Icinga check (or --format pgpool): time one beat on every target, exit 0/1/2/3."`
	Setup      setupCmd        `cmd:"" help:"Create (or print) the heartbeat table, publication and grants on the primary and on each subscriber."`
	Doctor     doctorCmd       `cmd:"" help:"Check every server once (read-only): ✓ or ✗ with the exact fix; exit 0 when run has all it needs."`
	Wait       waitCmd         `cmd:"" help:"Deploy gate: block until every target's true lag is at most --max-lag; exit 0 when reached, 1 on --timeout."`
	Demo       demoCmd         `cmd:"" help:"Start a throwaway local primary, standby and subscriber and watch walprobe on them."`
	Version    versionCmd      `cmd:"" help:"Print the version."`
	Completion completionCmd   `cmd:"" help:"Print the shell completion script for bash, zsh or fish."`
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run parses args and runs the chosen command. Exit status: 0 ok, 1 runtime
// failure, 2 bad configuration.
func run(args []string, stdout, stderr io.Writer) int {
	// Nothing printed here may echo a password from the input (redact.go):
	// kong writes help and usage into buffers that are redacted on the
	// way out, and every error is redacted as it is printed.
	red := newRedactor(args)
	var kout, kerr bytes.Buffer
	flush := func() {
		io.WriteString(stdout, red.redact(kout.String()))
		io.WriteString(stderr, red.redact(kerr.String()))
		kout.Reset()
		kerr.Reset()
	}
	fail := func(err error, code int) int {
		fmt.Fprintln(stderr, "walprobe:", red.redact(err.Error()))
		return code
	}
	var c cli
	exited, exitCode := false, 0
	parser, err := newParser(&c, kong.Writers(&kout, &kerr), kong.Configuration(yamlLoader(red)),
		kong.Exit(func(code int) { exited, exitCode = true, code }))
	if err != nil {
		return fail(err, 2)
	}
	if code, ok := complete(parser); ok { // the shell asking for completions
		flush()
		return code
	}
	kctx, err := parser.Parse(args)
	flush()
	if exited { // --help, or kong's own usage error
		return exitCode
	}
	if err != nil {
		return fail(err, 2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kctx.BindTo(ctx, (*context.Context)(nil))
	err = kctx.Run(streams{stdout, stderr})
	var cfgErr *configError
	var status exitStatus
	switch {
	case err == nil:
		return 0
	case errors.As(err, &status):
		return int(status) // already reported by the command
	case errors.As(err, &cfgErr):
		return fail(err, 2)
	default:
		return fail(err, 1)
	}
}

// newParser builds the command line model; the reference docs are
// generated from the same model (docs_test.go).
func newParser(c *cli, opts ...kong.Option) (*kong.Kong, error) {
	return kong.New(c, append([]kong.Option{
		kong.Name("walprobe"),
		kong.Description("True replication lag for PostgreSQL: time every heartbeat from commit on the primary to visibility on each standby, subscriber and read endpoint."),
		kong.Configuration(loadYAML),
		kong.DefaultEnvars("WALPROBE"),
		kong.UsageOnError(),
	}, opts...)...)
}

// exitStatus is an error that carries a command's exit status when the
// command has already printed what the user needs (walprobe check).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// streams carries the command's output writers into Run methods.
type streams struct{ out, err io.Writer }

type versionCmd struct{}

func (versionCmd) Run(s streams) error {
	fmt.Fprintln(s.out, "walprobe", version)
	return nil
}
