// Package cli is the gild command line: cobra commands, one file per command group, that
// either run the server (serve) or talk to one over its HTTP API (everything else). It
// owns how results are shown (tables for people, the API's JSON for scripts) and how
// failures become exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Env is what a run of the CLI reads and writes besides its arguments. Tests pass their own
// so that runs do not share process state.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads environment variables; nil means os.Getenv.
	Getenv func(string) string
}

// Execute runs the CLI on the process's arguments and streams and returns its exit code.
func Execute() int {
	return Run(context.Background(), os.Args[1:], Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
}

// Run runs the CLI with args (without the program name) and returns its exit code: 0 on
// success, 1 on a failure, 2 on a usage error.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	a := &app{env: env}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	printError(env.Stderr, err)
	// Cobra's own errors (unknown commands and flags, wrong argument counts) come before any
	// command runs; errors after that are failures unless a command calls them usage errors.
	var ue *usageError
	if errors.As(err, &ue) || !a.ran {
		if a.cmd != nil {
			fmt.Fprintf(env.Stderr, "Run '%s --help' for usage.\n", a.cmd.CommandPath())
		} else {
			fmt.Fprintln(env.Stderr, "Run 'gild --help' for usage.")
		}
		return exitUsage
	}
	return exitError
}

// app is the state of one run: its streams, its global flags, and whether a command body
// started (which separates usage errors from failures).
type app struct {
	env Env

	output    string
	server    string
	tokenFile string

	ran bool
	cmd *cobra.Command
}

// usageError is a mistake in how gild was called, answered with exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// Output formats.
const (
	outputTable = "table"
	outputJSON  = "json"
)

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "gild",
		Short: "gild: a self-hosted golden-image factory and VM compliance tracker",
		Long: `gild builds golden VM images and tracks the compliance of the VMs made from them,
behind an API shaped like Azure Resource Manager.

Run 'gild serve' to start a server, 'gild login' to point this CLI at one, then
'gild get', 'gild put', 'gild list' and the rest to work with its resources.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.cmd = cmd
			switch a.output {
			case outputTable, outputJSON:
				return nil
			}
			return usageErrorf("invalid --output %q: use table or json", a.output)
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		a.cmd = cmd
		return &usageError{err}
	})
	pf := root.PersistentFlags()
	pf.StringVarP(&a.output, "output", "o", outputTable, "output format: table or json")
	pf.StringVar(&a.server, "server", "", "gild server URL (overrides $GILD_SERVER and the saved login)")
	pf.StringVar(&a.tokenFile, "token-file", "", "file holding the API token (overrides $GILD_TOKEN and the saved login)")

	root.AddCommand(
		a.serveCommand(),
		a.loginCommand(),
		a.getCommand(),
		a.putCommand(),
		a.patchCommand(),
		a.deleteCommand(),
		a.listCommand(),
		a.tokenCommand(),
		a.roleCommand(),
		a.auditCommand(),
		a.whoamiCommand(),
		a.policyCommand(),
		a.complianceCommand(),
		a.imageCommand(),
		a.vmCommand(), a.machineCommand(), a.guestConfigCommand(),
		a.jobsCommand(), a.webhookCommand(),
	)
	return root
}

// run wraps a command body so that Run knows a command started: its errors are failures,
// not usage errors, unless it says otherwise.
func (a *app) run(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.ran = true
		a.cmd = cmd
		return fn(cmd, args)
	}
}

// printError writes err to w as "gild: ...". An API error reads "Code: message (target:
// target)", after whatever context wraps it, with each of its details on a line of its own.
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "gild: %s\n", err)
	var ae *APIError
	if errors.As(err, &ae) {
		for _, d := range ae.Details {
			fmt.Fprintf(w, "  - %s\n", d.summary())
		}
	}
}

// exactArgs is cobra.ExactArgs with a message that names the arguments expected.
func (a *app) exactArgs(n int, names string) cobra.PositionalArgs {
	return a.rangeArgs(n, n, names)
}

// rangeArgs is cobra.RangeArgs with a message that names the arguments expected.
func (a *app) rangeArgs(lo, hi int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		a.cmd = cmd
		if len(args) < lo || len(args) > hi {
			return usageErrorf("%s takes %s (got %d argument(s))", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}
