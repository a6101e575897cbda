package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/willabides/kongplete"
)

// Shell completion works the way kongplete (posener/complete) does: the
// shell runs walprobe itself with COMP_LINE and COMP_POINT set, and
// walprobe prints the candidates, derived from the kong model (commands,
// flags, enum values). So completion never drifts from the flags, and the
// script each shell needs is one line that points at this binary.

// completionCmd prints the script that hooks walprobe into a shell.
type completionCmd struct {
	Shell string `arg:"" help:"bash, zsh or fish." enum:"bash,zsh,fish"`
}

// completionScripts are the per-shell hooks; %[1]s is the binary's
// absolute path (quoted for the shell), %[2]s the command name.
var completionScripts = map[string]string{
	"bash": `# walprobe completion for bash: add to ~/.bashrc
#   source <(walprobe completion bash)
complete -o default -o bashdefault -C %[1]s %[2]s
`,
	// zsh runs bash completion functions through bashcompinit.
	"zsh": `# walprobe completion for zsh: add to ~/.zshrc
#   source <(walprobe completion zsh)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
complete -o default -o bashdefault -C %[1]s %[2]s
`,
	// fish has no COMP_LINE of its own: build it from the command line,
	// with a trailing space when the cursor starts a new word.
	"fish": `# walprobe completion for fish: add to ~/.config/fish/config.fish
#   walprobe completion fish | source
function __complete_%[2]s
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    %[1]s
end
complete -f -c %[2]s -a "(__complete_%[2]s)"
`,
}

func (c *completionCmd) Run(k *kong.Context, s streams) error {
	tmpl, ok := completionScripts[c.Shell]
	if !ok { // kong's enum check makes this unreachable from the CLI
		return configErrorf("completion %q: want bash, zsh or fish", c.Shell)
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("completion: find this binary's path (the script must name it): %w", err)
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	fmt.Fprintf(s.out, tmpl, shellQuote(c.Shell, bin), k.Model.Name)
	return nil
}

// shellQuote quotes a path for shell: as is when it needs no quoting,
// else in single quotes (bash and zsh close, escape and reopen them
// around a quote; fish escapes it inside).
func shellQuote(shell, s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+") == "" {
		return s
	}
	if shell == "fish" {
		return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// complete answers a shell's completion request (COMP_LINE set): it
// prints the candidates and returns the exit status and true. Without a
// request it returns false and the command line is parsed as usual.
func complete(parser *kong.Kong) (int, bool) {
	if os.Getenv("COMP_LINE") == "" {
		return 0, false
	}
	code, exited := 0, false
	kongplete.Complete(parser,
		kongplete.WithErrorHandler(func(err error) { fmt.Fprintln(parser.Stderr, "walprobe: completion:", err) }),
		kongplete.WithExitFunc(func(c int) {
			if !exited {
				code, exited = c, true
			}
		}))
	return code, true
}
